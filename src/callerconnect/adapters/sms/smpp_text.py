"""What travels inside SMPP 3.4 PDUs: text encodings, concatenation, delivery receipts.

Pure functions, no I/O, shared by the SMPP provider and its tests.

* **Encoding** (``data_coding``): a text made only of GSM 03.38 characters is sent as
  ``0`` (the SMSC default alphabet, GSM-7, one septet per octet — "unpacked", as SMPP
  carries it); anything else as ``8`` (UCS-2, big-endian UTF-16, surrogate pairs kept).
* **Concatenation**: a text longer than one SMS (160 septets / 70 UTF-16 units) is cut
  into parts of at most 153 septets / 67 units, each sent as its own ``submit_sm`` with
  a 6-octet user-data header (IEI 0x00, 8-bit reference, total, sequence) and
  ``esm_class`` UDHI (0x40). The header is the form every handset and SMSC understands;
  the ``sar_*`` TLVs are not supported by all SMSCs. A part never ends inside an escape
  sequence or a surrogate pair, so the count matches
  :func:`callerconnect.domain.sms_encoding.segment_count`.
* **Delivery receipts**: ``deliver_sm`` with ``esm_class`` message type 0x04 (SMSC
  delivery receipt) or 0x20 (intermediate notification); the text follows SMPP 3.4
  appendix B (``id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...
  text:...``), and the ``receipted_message_id`` / ``message_state`` TLVs win when present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callerconnect.domain.sms_encoding import (
    _GSM7_BASIC_TABLE,
    GSM7_EXTENSION,
    encoding_of,
)

__all__ = [
    "DATA_CODING_GSM7",
    "DATA_CODING_UCS2",
    "ESM_UDHI",
    "Receipt",
    "SmppText",
    "decode_short_message",
    "encode_text",
    "is_receipt",
    "parse_receipt",
    "relative_validity",
    "split_udh",
]

DATA_CODING_GSM7 = 0x00  # SMSC default alphabet
DATA_CODING_ASCII = 0x01
DATA_CODING_LATIN1 = 0x03
DATA_CODING_UCS2 = 0x08
ESM_UDHI = 0x40
_ESM_TYPE_MASK = 0x3C
_ESM_DELIVERY_RECEIPT = 0x04
_ESM_INTERMEDIATE = 0x20

_GSM7_SINGLE, _GSM7_PART = 160, 153  # septets
_UCS2_SINGLE, _UCS2_PART = 140, 134  # octets (70 and 67 UTF-16 units)
_MAX_PARTS = 255

_GSM7_CODE = {char: code for code, char in enumerate(_GSM7_BASIC_TABLE) if char != "\x1b"}
_GSM7_CHAR = {code: char for char, code in _GSM7_CODE.items()}
_ESCAPE = 0x1B
_GSM7_EXTENSION_CODE = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
assert set(_GSM7_EXTENSION_CODE) == GSM7_EXTENSION
_GSM7_EXTENSION_CHAR = {code: char for char, code in _GSM7_EXTENSION_CODE.items()}


def _gsm7_units(text: str) -> list[bytes]:
    units = []
    for char in text:
        if char in _GSM7_CODE:
            units.append(bytes([_GSM7_CODE[char]]))
        else:
            units.append(bytes([_ESCAPE, _GSM7_EXTENSION_CODE[char]]))
    return units


def _ucs2_units(text: str) -> list[bytes]:
    return [char.encode("utf-16-be") for char in text]


def encode_text(text: str) -> tuple[int, list[bytes]]:
    """``data_coding`` and the text as indivisible units (a character with its escape
    or both halves of its surrogate pair)."""
    if encoding_of(text) == "GSM-7":
        return DATA_CODING_GSM7, _gsm7_units(text)
    return DATA_CODING_UCS2, _ucs2_units(text)


@dataclass(frozen=True)
class SmppText:
    """A text ready for ``submit_sm``: one ``short_message`` per part."""

    data_coding: int
    esm_class: int
    parts: tuple[bytes, ...]


def split_udh(text: str, reference: int) -> SmppText:
    """Encode ``text`` and cut it into parts with a concatenation header if needed."""
    data_coding, units = encode_text(text)
    single, part_limit = (
        (_GSM7_SINGLE, _GSM7_PART)
        if data_coding == DATA_CODING_GSM7
        else (_UCS2_SINGLE, _UCS2_PART)
    )
    if sum(len(unit) for unit in units) <= single:
        return SmppText(data_coding, 0, (b"".join(units),))
    chunks: list[bytes] = []
    current = b""
    for unit in units:
        if len(current) + len(unit) > part_limit:
            chunks.append(current)
            current = b""
        current += unit
    chunks.append(current)
    if len(chunks) > _MAX_PARTS:
        raise ValueError(f"text needs {len(chunks)} parts; at most {_MAX_PARTS} can be joined")
    ref = reference & 0xFF
    total = len(chunks)
    parts = tuple(
        bytes([0x05, 0x00, 0x03, ref, total, number]) + chunk
        for number, chunk in enumerate(chunks, start=1)
    )
    return SmppText(data_coding, ESM_UDHI, parts)


def relative_validity(seconds: int) -> str:
    """SMPP relative time ``YYMMDDhhmmss000R`` (years and months left at zero)."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days > 99:
        raise ValueError("validity period longer than 99 days")
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


# --- what comes back ------------------------------------------------------------------------


def is_receipt(esm_class: int) -> bool:
    """A delivery receipt or intermediate notification, not a caller's own text."""
    return (esm_class & _ESM_TYPE_MASK) in (_ESM_DELIVERY_RECEIPT, _ESM_INTERMEDIATE)


def is_mobile_originated(esm_class: int) -> bool:
    return (esm_class & _ESM_TYPE_MASK) == 0


def decode_gsm7(data: bytes) -> str:
    chars: list[str] = []
    escaped = False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            chars.append(_GSM7_EXTENSION_CHAR.get(code, " "))
            escaped = False
        elif code == _ESCAPE:
            escaped = True
        else:
            chars.append(_GSM7_CHAR.get(code, "?"))
    return "".join(chars)


def decode_short_message(data: bytes, data_coding: int) -> str:
    """The text of a ``deliver_sm`` body (without any user-data header)."""
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == DATA_CODING_LATIN1:
        return data.decode("latin-1")
    if data_coding == DATA_CODING_ASCII:
        return data.decode("ascii", errors="replace")
    if data_coding in (DATA_CODING_GSM7, 0xF0, 0xF1, 0xF2, 0xF3):
        return decode_gsm7(data)
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    number: int


def strip_udh(data: bytes) -> tuple[bytes, Concatenation | None]:
    """Split a user-data header off ``data``; return the body and its concatenation IE."""
    if not data:
        return data, None
    length = data[0]
    header, body = data[1 : 1 + length], data[1 + length :]
    concat = None
    index = 0
    while index + 2 <= len(header):
        iei, ie_length = header[index], header[index + 1]
        value = header[index + 2 : index + 2 + ie_length]
        if iei == 0x00 and ie_length == 3 and len(value) == 3:
            concat = Concatenation(value[0], value[1], value[2])
        elif iei == 0x08 and ie_length == 4 and len(value) == 4:
            concat = Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3])
        index += 2 + ie_length
    return body, concat


@dataclass(frozen=True)
class Receipt:
    message_id: str
    status: str  # sent, delivered, undelivered, failed
    stat: str  # the SMSC's word: DELIVRD, UNDELIV, ...
    error_code: str | None
    retryable: bool | None


# stat word -> (our status, retryable when not delivered)
_STATS: dict[str, tuple[str, bool | None]] = {
    "DELIVRD": ("delivered", None),
    "ACCEPTD": ("sent", None),
    "ENROUTE": ("sent", None),
    "UNKNOWN": ("sent", None),
    "EXPIRED": ("undelivered", True),  # the phone was off past the validity period
    "UNDELIV": ("undelivered", False),
    "DELETED": ("failed", False),
    "REJECTD": ("failed", False),
}
# message_state TLV values (SMPP 3.4 section 5.2.28) -> stat words
_MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_FIELD = re.compile(r"(?i)\b(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:")
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427


def receipt_fields(text: str) -> dict[str, str]:
    """The ``name:value`` fields of a receipt text (names lower case)."""
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for index, match in enumerate(matches):
        name = match.group(1).lower()
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        if name == "text":
            end = len(text)
        fields.setdefault(name, text[match.end() : end].strip())
        if name == "text":
            break
    return fields


def parse_receipt(
    text: str, *, receipted_message_id: str | None = None, message_state: int | None = None
) -> Receipt | None:
    """A receipt from its text and TLVs; None when it names no message."""
    fields = receipt_fields(text)
    message_id = (receipted_message_id or "").strip().strip("\x00") or fields.get("id", "")
    if not message_id:
        return None
    stat = _MESSAGE_STATES.get(message_state or 0) or fields.get("stat", "").upper()
    status, retryable = _STATS.get(stat, ("sent", None))
    err = fields.get("err", "").strip()
    error_code = None
    if status != "delivered" and status != "sent" and err and err.strip("0"):
        error_code = err
    return Receipt(
        message_id=message_id,
        status=status,
        stat=stat or "?",
        error_code=error_code,
        retryable=retryable if status in ("undelivered", "failed") else None,
    )
