"""What a dead letter keeps of a payload: its first 64 KiB, how long it was, its hash.

A dead letter exists so that nothing a CAD sent is lost without a trace, but keeping
every refused body whole lets one request store megabytes for good (a malformed body up
to ``intake.max_body_bytes``, an event with megabytes of extra properties). So a
letter keeps at most :data:`MAX_KEPT_BYTES` of the payload, plus its length in bytes and
the SHA-256 of all of it: enough to see what went wrong, and for the CAD's operator to
match the letter with what they sent (``sha256sum``). A payload of that size or less is
kept whole, and can be replayed.

When not all of a body was read (it was refused for its size before the end), the
length is the one the request declared, if any, and there is no hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_KEPT_BYTES = 64 * 1024
#: A declared length beyond what the column holds is not a length worth keeping.
_LARGEST_SIZE = 2**63 - 1


@dataclass(frozen=True)
class KeptPayload:
    text: str
    """The payload's first :data:`MAX_KEPT_BYTES` bytes as text (UTF-8; bytes that are
    not, and a character cut at the end, read as U+FFFD)."""
    size: int | None
    """The payload's length in bytes, when known."""
    sha256: str | None
    """Hex SHA-256 of the whole payload, when all of it was read."""
    truncated: bool

    @classmethod
    def of(cls, raw: str | bytes, *, size: int | None = None, whole: bool = True) -> KeptPayload:
        """What to keep of ``raw``: all of the payload when ``whole``, else the part of it
        that was read (``size`` is then the length the request declared, if any)."""
        # surrogatepass: a decoded JSON string may hold half a surrogate pair.
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
        text = data[:MAX_KEPT_BYTES].decode("utf-8", errors="replace")
        # A byte that is not UTF-8 reads as U+FFFD, three bytes: cut again so the text
        # kept is within the bound too (at a character's end).
        text = text.encode("utf-8")[:MAX_KEPT_BYTES].decode("utf-8", errors="ignore")
        if whole:
            return cls(
                text, len(data), hashlib.sha256(data).hexdigest(), len(data) > MAX_KEPT_BYTES
            )
        known = size if size is not None and 0 <= size <= _LARGEST_SIZE else None
        return cls(text, known, None, True)
