"""What travels inside SMPP PDUs: encodings, concatenation, receipts, error mapping."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerconnect.adapters.sms.base import SendError
from callerconnect.adapters.sms.smpp_submit import classify_status
from callerconnect.adapters.sms.smpp_text import (
    decode_gsm7,
    decode_short_message,
    encode_text,
    is_mobile_originated,
    is_receipt,
    parse_receipt,
    receipt_fields,
    relative_validity,
    split_udh,
    strip_udh,
)
from callerconnect.adapters.sms.twilio import (
    TwilioProvider,
    classify_delivery_error,
    parse_status,
)
from callerconnect.domain.sms_encoding import (
    _GSM7_BASIC_TABLE,
    GSM7_EXTENSION,
    encoding_of,
    segment_count,
)
from callerconnect.service.receipts import (
    normalize_id,
    part_candidates,
    receipt_candidates,
)

GSM7_CHARS = "".join(sorted(set(_GSM7_BASIC_TABLE) - {"\x1b"} | GSM7_EXTENSION))


def join_parts(parts: tuple[bytes, ...], data_coding: int) -> str:
    text = ""
    for part in parts:
        body, _ = strip_udh(part) if len(parts) > 1 else (part, None)
        text += decode_short_message(body, data_coding)
    return text


@given(st.text(alphabet=GSM7_CHARS, max_size=700))
def test_gsm7_text_goes_as_data_coding_0_in_as_many_parts_as_billed(text: str) -> None:
    encoded = split_udh(text, 7)
    assert encoded.data_coding == 0
    assert len(encoded.parts) == segment_count(text)
    assert join_parts(encoded.parts, 0) == text


@given(st.text(max_size=400).filter(lambda t: encoding_of(t) == "UCS-2"))
def test_other_text_goes_as_ucs2_in_as_many_parts_as_billed(text: str) -> None:
    encoded = split_udh(text, 7)
    assert encoded.data_coding == 8
    assert len(encoded.parts) == segment_count(text)
    assert join_parts(encoded.parts, 8) == text


def test_long_text_parts_carry_a_concatenation_header_and_udhi() -> None:
    encoded = split_udh("a" * 161, 0x1FF)
    assert encoded.esm_class == 0x40
    assert [part[:6] for part in encoded.parts] == [
        bytes([5, 0, 3, 0xFF, 2, 1]),
        bytes([5, 0, 3, 0xFF, 2, 2]),
    ]
    assert [len(part) for part in encoded.parts] == [6 + 153, 6 + 8]
    single = split_udh("a" * 160, 1)
    assert (single.esm_class, single.parts) == (0, (b"a" * 160,))


def test_escape_sequences_and_surrogate_pairs_are_never_split() -> None:
    gsm = split_udh("a" * 152 + "€" + "b" * 10, 1)  # € is two septets: it moves on
    assert [len(p) - 6 for p in gsm.parts] == [152, 12]
    ucs = split_udh("é" * 66 + "😀" + "x" * 5, 1)  # 😀 is two UTF-16 units
    assert [len(p) - 6 for p in ucs.parts] == [132, 14]


def test_gsm7_is_sent_unpacked_with_escapes() -> None:
    data_coding, units = encode_text("@A{€}")
    assert data_coding == 0
    assert b"".join(units) == bytes([0x00, 0x41, 0x1B, 0x28, 0x1B, 0x65, 0x1B, 0x29])
    assert decode_gsm7(b"".join(units)) == "@A{€}"


def test_strip_udh_reads_8_and_16_bit_references() -> None:
    body, concat = strip_udh(bytes([6, 8, 4, 0x12, 0x34, 3, 2]) + b"hi")
    assert body == b"hi" and concat is not None
    assert (concat.reference, concat.total, concat.number) == (0x1234, 3, 2)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(60, "000000000100000R"), (3600, "000000010000000R"), (36_000, "000000100000000R"),
     (90_061, "000001010101000R")],
)  # fmt: skip
def test_validity_period_is_written_relative(seconds: int, written: str) -> None:
    assert relative_validity(seconds) == written


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "id:1A2B sub:001 dlvrd:001 submit date:2601161400 done date:260116140012 "
            "stat:DELIVRD err:000 text:Ottawa Police: we",
            ("1A2B", "delivered", None, None),
        ),
        (
            "id:0000012345 sub:001 dlvrd:000 submit date:2601161400 done date:2601161401 "
            "stat:UNDELIV err:034 text:",
            ("0000012345", "undelivered", "034", False),
        ),
        ("id:9 stat:EXPIRED err:0", ("9", "undelivered", None, True)),
        ("id:9 stat:REJECTD err:011", ("9", "failed", "011", False)),
        ("id:9 stat:ACCEPTD", ("9", "sent", None, None)),
        ("ID:9 STAT:delivrd", ("9", "delivered", None, None)),
        ("id:9 stat:SOMETHING", ("9", "sent", None, None)),
    ],
)
def test_receipt_text_is_read_per_smpp_appendix_b(
    text: str, expected: tuple[str, str, str | None, bool | None]
) -> None:
    receipt = parse_receipt(text)
    assert receipt is not None
    assert (receipt.message_id, receipt.status, receipt.error_code, receipt.retryable) == expected


def test_receipt_tlvs_win_over_the_text() -> None:
    receipt = parse_receipt("id:1 stat:DELIVRD", receipted_message_id="abc\x00", message_state=5)
    assert receipt is not None
    assert (receipt.message_id, receipt.status) == ("abc", "undelivered")
    assert parse_receipt("no id here stat:DELIVRD") is None
    assert receipt_fields("id:a text:stat:DELIVRD and more")["text"] == "stat:DELIVRD and more"


def test_esm_class_tells_receipts_from_callers_texts() -> None:
    assert is_receipt(0x04) and is_receipt(0x20) and is_receipt(0x44)
    assert not is_receipt(0x00) and not is_receipt(0x08)
    assert is_mobile_originated(0x00) and is_mobile_originated(0x40)


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (0x58, "throttled", True),  # ESME_RTHROTTLED
        (0x14, "throttled", True),  # ESME_RMSGQFUL
        (0x0B, "invalid_number", False),  # ESME_RINVDSTADR
        (0x51, "invalid_number", False),  # ESME_RINVDSTNPI
        (0x62, "rejected", False),  # ESME_RINVEXPIRY
        (0x65, "rejected", False),  # ESME_RX_P_APPN
        (0x08, "unavailable", True),  # ESME_RSYSERR
        (0x45, "unavailable", True),  # ESME_RSUBMITFAIL
        (0x64, "unavailable", True),  # ESME_RX_T_APPN
        (0x0400, "unavailable", True),  # vendor specific
    ],
)
def test_submit_sm_resp_status_maps_to_a_send_error(
    status: int, code: str, retryable: bool
) -> None:
    assert classify_status(status) == (code, retryable)


# --- ids: one spelling, and hex or decimal ---------------------------------------------------


def test_ids_are_compared_in_one_spelling() -> None:
    assert normalize_id(" 0001A2B ") == "1a2b"
    assert normalize_id("SMabc") == "smabc"
    assert normalize_id("000") == "0"


@pytest.mark.parametrize(
    ("mode", "receipt_id", "candidates"),
    [
        ("same", "1A2B3C00", ["1a2b3c00"]),
        ("receipt_decimal", "439041024", ["1a2b3c00"]),
        ("receipt_hex", "1a2b3c00", ["439041024"]),
        ("auto", "439041024", ["439041024", "1a2b3c00", "18136436772"]),
        ("auto", "1a2b3c00", ["1a2b3c00", "439041024"]),
    ],
)
def test_receipt_ids_are_tried_as_given_then_in_the_other_base(
    mode: str, receipt_id: str, candidates: list[str]
) -> None:
    assert receipt_candidates(receipt_id, mode) == candidates  # type: ignore[arg-type]
    for candidate in candidates:  # and the way back finds the receipt's id
        assert normalize_id(receipt_id) in part_candidates(candidate, mode)  # type: ignore[arg-type]


# --- Twilio's side of the same ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("30003", True), ("30006", False), ("30005", False), ("30008", True), ("21610", False),
     (None, None), ("99999", None)],
)  # fmt: skip
def test_twilio_delivery_errors_are_classified(code: str | None, retryable: bool | None) -> None:
    assert classify_delivery_error(code) is retryable
    form = {"MessageSid": "SM1", "MessageStatus": "undelivered"}
    if code:
        form["ErrorCode"] = code
    assert parse_status(form).retryable is retryable


@pytest.mark.parametrize(("header", "after"), [("7", 7.0), ("", None), ("soon", None),
                                               ("100000", 300.0)])  # fmt: skip
def test_twilio_throttling_says_how_long_to_wait(header: str, after: float | None) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        headers = {"Retry-After": header} if header else {}
        return httpx.Response(429, json={"code": 20429, "message": "Too Many"}, headers=headers)

    with TwilioProvider(
        "AC" + "0" * 32, "token", "+13438036032", transport=httpx.MockTransport(reply)
    ) as provider:
        from callerconnect.adapters.sms.base import OutgoingSms

        with pytest.raises(SendError) as caught:
            provider.send(OutgoingSms("+16135550142", "hi", "ref"))
    assert (caught.value.code, caught.value.retryable) == ("throttled", True)
    assert caught.value.retry_after == after
