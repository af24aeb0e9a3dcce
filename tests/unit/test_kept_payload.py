"""What a dead letter keeps of a payload: never more than 64 KiB, always its length and
(when read whole) its SHA-256."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from callerconnect.service.kept_payload import MAX_KEPT_BYTES, KeptPayload

#: Payloads around the bound: a chunk (any bytes, UTF-8 or not) repeated up to twice the
#: bound, so sizes land below, at and above it.
payloads = st.builds(
    lambda chunk, times: (chunk * (times // len(chunk) + 1))[:times],
    st.binary(min_size=1, max_size=64),
    st.integers(min_value=0, max_value=2 * MAX_KEPT_BYTES + 7),
)


@given(raw=payloads)
def test_a_payload_read_whole_keeps_a_bounded_prefix_its_length_and_hash(raw: bytes) -> None:
    kept = KeptPayload.of(raw)
    assert len(kept.text.encode("utf-8")) <= MAX_KEPT_BYTES
    assert kept.size == len(raw)
    assert kept.sha256 == hashlib.sha256(raw).hexdigest()
    assert kept.truncated == (len(raw) > MAX_KEPT_BYTES)
    prefix = raw[:MAX_KEPT_BYTES].decode("utf-8", errors="replace")
    assert prefix.startswith(kept.text)
    if not kept.truncated and prefix.encode("utf-8") == raw:  # UTF-8 and within the bound
        assert kept.text == raw.decode("utf-8")  # kept as it came


@given(text=st.text(min_size=1, max_size=20), times=st.integers(0, 30_000))
def test_text_with_any_characters_is_kept_within_the_bound(text: str, times: int) -> None:
    raw = text * times
    kept = KeptPayload.of(raw)
    assert len(kept.text.encode("utf-8")) <= MAX_KEPT_BYTES
    assert kept.size == len(raw.encode("utf-8", "surrogatepass"))


@given(raw=payloads, declared=st.one_of(st.none(), st.integers(0, 2**70)))
def test_a_body_not_read_to_its_end_has_no_hash_and_is_marked_cut_short(
    raw: bytes, declared: int | None
) -> None:
    kept = KeptPayload.of(raw, size=declared, whole=False)
    assert len(kept.text.encode("utf-8")) <= MAX_KEPT_BYTES
    assert (kept.sha256, kept.truncated) == (None, True)
    assert kept.size == (declared if declared is not None and declared < 2**63 else None)
