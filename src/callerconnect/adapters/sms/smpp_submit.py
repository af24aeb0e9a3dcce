"""Sending on the SMPP bind: the ``submit_sm`` PDUs of a text and what the SMSC's answer
means (the table of errors is in smpp.py's module docstring)."""

from __future__ import annotations

import secrets
from typing import Any

from callerconnect.adapters.sms.base import OutgoingSms, SendError
from callerconnect.adapters.sms.smpp_text import relative_validity, split_udh

ESME_ROK = 0x00
_THROTTLED = frozenset({0x58, 0x14})
_INVALID_NUMBER = frozenset({0x0B, 0x50, 0x51})
_REJECTED = frozenset(
    {
        0x01,  # RINVMSGLEN
        0x02,  # RINVCMDLEN
        0x03,  # RINVCMDID
        0x06,  # RINVPRTFLG
        0x07,  # RINVREGDLVFLG
        0x0A,  # RINVSRCADR
        0x43,  # RINVESMCLASS
        0x48,  # RINVSRCTON
        0x49,  # RINVSRCNPI
        0x53,  # RINVSYSTYP
        0x61,  # RINVSCHED
        0x62,  # RINVEXPIRY
        0x65,  # RX_P_APPN
        0x66,  # RX_R_APPN
        0xC0,  # RINVOPTPARSTREAM
        0xC1,  # ROPTPARNOTALLWD
        0xC2,  # RINVPARLEN
        0xC3,  # RMISSINGOPTPARAM
        0xC4,  # RINVOPTPARAMVAL
    }
)
# SMPP TON/NPI: international E.164 numbers; a short code is "network specific".
TON_INTERNATIONAL, _NPI_E164 = 1, 1
_TON_NETWORK_SPECIFIC, _NPI_UNKNOWN = 3, 0
REGISTERED_DELIVERY_FINAL = 0x01  # a receipt on success or failure


def classify_status(command_status: int) -> tuple[str, bool]:
    """``(code, retryable)`` for a non-zero ``submit_sm_resp`` command_status."""
    if command_status in _THROTTLED:
        return "throttled", True
    if command_status in _INVALID_NUMBER:
        return "invalid_number", False
    if command_status in _REJECTED:
        return "rejected", False
    return "unavailable", True


def address(number: str) -> tuple[str, int, int]:
    """SMPP address, TON and NPI for an E.164 number or a short code."""
    if number.startswith("+"):
        return number[1:], TON_INTERNATIONAL, _NPI_E164
    return number, _TON_NETWORK_SPECIFIC, _NPI_UNKNOWN


def submit_pdus(message: OutgoingSms, sender: str) -> list[dict[str, Any]]:
    """The ``submit_sm`` fields of each part of ``message``, in order; SendError for a
    text that cannot be sent at all (not retryable)."""
    source, source_ton, source_npi = address(sender)
    destination, dest_ton, dest_npi = address(message.to)
    if not destination.isdigit():
        raise SendError(
            "invalid_number", retryable=False, detail="destination is not in E.164 form"
        )
    try:
        text = split_udh(message.body, secrets.randbelow(256))
    except ValueError as error:
        raise SendError("rejected", retryable=False, detail=str(error)) from None
    validity = (
        relative_validity(message.validity_seconds) if message.validity_seconds is not None else ""
    )
    return [
        {
            "destination_addr": destination,
            "short_message": short_message,
            "source_addr": source,
            "source_addr_ton": source_ton,
            "source_addr_npi": source_npi,
            "dest_addr_ton": dest_ton,
            "dest_addr_npi": dest_npi,
            "esm_class": text.esm_class,
            "data_coding": text.data_coding,
            "validity_period": validity,
            "registered_delivery": REGISTERED_DELIVERY_FINAL,
        }
        for short_message in text.parts
    ]


def submitted_id(status: int, message_id: str | None) -> str:
    """The message id of an accepted part; SendError for any other answer."""
    if status == ESME_ROK:
        if not message_id:
            raise SendError(
                "bad_response",
                retryable=False,
                detail="submit_sm_resp without a message id; the text may be sent",
            )
        return str(message_id)
    code, retryable = classify_status(status)
    raise SendError(
        code,
        retryable=retryable,
        provider_code=f"0x{status:08X}",
        detail=f"submit_sm_resp command_status 0x{status:08X}",
    )


class NotBound(Exception):
    pass


def first_word(error: BaseException) -> str:
    text = str(error).split(" ", 1)[0]
    return text if text.startswith("ESME_") else type(error).__name__
