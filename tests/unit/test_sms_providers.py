"""Console provider, Twilio error translation and Twilio webhook parsing (no network)."""

from __future__ import annotations

import io
import re
import threading
from typing import Any

import httpx
import pytest

from callerconnect.adapters.sms.base import OutgoingSms, SendError, SmsProvider
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.adapters.sms.twilio import (
    TwilioPayloadError,
    TwilioProvider,
    parse_inbound,
    parse_status,
)

CALLER = "+16135550142"


def sms(body: str = "Case 2024-123456 received.", to: str = CALLER) -> OutgoingSms:
    return OutgoingSms(to=to, body=body, reference="inc-1:confirmation:0")


# -- console ---------------------------------------------------------------------------


def test_console_prints_masked_phone_and_body_never_the_number() -> None:
    out = io.StringIO()

    result = ConsoleProvider(out).send(sms())

    printed = out.getvalue()
    assert "+1613***0142" in printed
    assert "5550142" not in re.sub(r"\D", "", printed)
    assert "  | Case 2024-123456 received." in printed
    assert result.provider_message_id in printed
    assert "GSM-7, 26 chars, 1 segment" in printed


def test_console_ids_are_unique_and_recognisable() -> None:
    provider = ConsoleProvider(io.StringIO())

    ids = [provider.send(sms()).provider_message_id for _ in range(50)]

    assert len(set(ids)) == 50
    assert all(re.fullmatch(r"console-[0-9a-f]{32}", i) for i in ids)
    assert [i for i, _ in provider.sent] == ids


def test_console_remembers_only_the_latest_texts() -> None:
    provider = ConsoleProvider(io.StringIO(), keep=3)

    ids = [provider.send(sms()).provider_message_id for _ in range(5)]

    assert [i for i, _ in provider.sent] == ids[-3:]


def test_console_writes_to_the_current_stdout_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ConsoleProvider().send(sms())

    assert "+1613***0142" in capsys.readouterr().out


def test_console_blocks_from_many_threads_never_interleave() -> None:
    out = io.StringIO()
    provider = ConsoleProvider(out)
    body = "line one\nline two\nline three"

    def worker() -> None:
        for _ in range(25):
            provider.send(sms(body))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = out.getvalue().splitlines()
    assert len(lines) == 200 * 4
    for start in range(0, len(lines), 4):
        assert lines[start].startswith("[sms] console-")
        assert lines[start + 1 : start + 4] == ["  | line one", "  | line two", "  | line three"]
    assert len(provider.sent) == 200


def test_console_output_failure_is_a_retryable_send_error() -> None:
    out = io.StringIO()
    out.close()

    with pytest.raises(SendError) as info:
        ConsoleProvider(out).send(sms())

    assert (info.value.code, info.value.retryable) == ("unavailable", True)


def test_console_provider_satisfies_the_provider_interface() -> None:
    provider: SmsProvider = ConsoleProvider(io.StringIO())
    assert provider.name == "console"


# -- Twilio error translation (table) ----------------------------------------------------


def _provider_answering(status: int, payload: Any = None, **headers: str) -> TwilioProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(payload, dict):
            return httpx.Response(status, json=payload, headers=headers)
        return httpx.Response(status, content=payload or b"", headers=headers)

    return TwilioProvider(
        "AC" + "0" * 32, "token", "+13438036032", transport=httpx.MockTransport(handler)
    )


def _twilio_error(code: int, status: int, message: str = "") -> dict[str, Any]:
    return {
        "code": code,
        "message": message or f"error {code}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, 20429, ("throttled", True)),
        (400, 20429, ("throttled", True)),  # the code alone is enough
        (429, None, ("throttled", True)),  # and so is the status
        (400, 21611, ("throttled", True)),  # From number's queue is full
        (500, 20500, ("unavailable", True)),
        (502, None, ("unavailable", True)),
        (503, None, ("unavailable", True)),
        (408, None, ("timeout", True)),
        (400, 21211, ("invalid_number", False)),
        (400, 21614, ("invalid_number", False)),
        (400, 21612, ("invalid_number", False)),
        (400, 21408, ("rejected", False)),  # region not enabled: an account setting
        (400, 21610, ("opted_out", False)),
        (401, 20003, ("auth", False)),
        (401, None, ("auth", False)),
        (403, 10001, ("auth", False)),  # account not active
        (400, 21617, ("rejected", False)),
        (404, 20404, ("rejected", False)),
        (302, None, ("unavailable", True)),
    ],
)
def test_twilio_answers_translate_to_stable_codes(
    status: int, code: int | None, expected: tuple[str, bool]
) -> None:
    payload = _twilio_error(code, status) if code is not None else b"<html>oops</html>"
    with _provider_answering(status, payload) as provider, pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable) == expected
    assert info.value.provider_code == (str(code) if code is not None else None)


def test_string_error_code_from_a_compatible_gateway_is_understood() -> None:
    with (
        _provider_answering(400, {"code": "21610", "message": "unsubscribed"}) as provider,
        pytest.raises(SendError) as info,
    ):
        provider.send(sms())

    assert (info.value.code, info.value.provider_code) == ("opted_out", "21610")


@pytest.mark.parametrize(
    "message",
    [
        "The 'To' number +16135550142 is not a valid phone number.",
        "The 'To' number 6135550142 is not a valid phone number.",
        "The 'To' number (613) 555-0142 is not a valid phone number.",
        "The 'To' number 1-613-555-0142 is not a valid phone number.",
    ],
)
def test_error_detail_never_contains_the_number_in_any_form(message: str) -> None:
    with (
        _provider_answering(400, _twilio_error(21211, 400, message)) as provider,
        pytest.raises(SendError) as info,
    ):
        provider.send(sms())

    for text in (str(info.value), info.value.detail, repr(info.value)):
        assert "5550142" not in re.sub(r"\D", "", text), text


def test_error_detail_is_one_bounded_line() -> None:
    message = "bad\r\nthing " + "x" * 1000
    with (
        _provider_answering(400, _twilio_error(21000, 400, message)) as provider,
        pytest.raises(SendError) as info,
    ):
        provider.send(sms())

    assert "\n" not in info.value.detail and "\r" not in info.value.detail
    assert len(info.value.detail) < 260


def test_created_without_a_sid_is_not_retried_because_it_may_be_sent() -> None:
    with (
        _provider_answering(201, {"status": "queued"}) as provider,
        pytest.raises(SendError) as info,
    ):
        provider.send(sms())

    assert (info.value.code, info.value.retryable) == ("bad_response", False)


def test_created_message_that_twilio_already_failed_keeps_its_sid() -> None:
    with _provider_answering(201, {"sid": "SM" + "1" * 32, "status": "failed"}) as provider:
        result = provider.send(sms())

    assert (result.provider_message_id, result.status) == ("SM" + "1" * 32, "failed")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"account_sid": ""}, "account_sid"),
        ({"auth_token": " "}, "auth_token"),
        ({"sender": ""}, "sender"),
        ({"api_base": "ftp://example.org"}, "api_base"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict[str, Any], problem: str) -> None:
    settings: dict[str, Any] = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "token",
        "sender": "+13438036032",
    }
    settings.update(kwargs)
    with pytest.raises(ValueError, match=problem):
        TwilioProvider(**settings)


def test_repr_never_shows_the_token() -> None:
    with TwilioProvider("AC" + "0" * 32, "s3cret-token", "+13438036032") as provider:
        assert "s3cret" not in repr(provider)


# -- Twilio webhook payloads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [
        ("accepted", "sent"),
        ("scheduled", "sent"),
        ("queued", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("undelivered", "undelivered"),
        ("partially_delivered", "undelivered"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("Delivered", "delivered"),
        ("something_new", "sent"),  # unknown: harmless, statuses only move forward
    ],
)
def test_status_callback_statuses_fold_into_the_outbox_vocabulary(
    twilio_status: str, status: str
) -> None:
    report = parse_status({"MessageSid": "SM" + "a" * 32, "MessageStatus": twilio_status})

    assert report.provider_message_id == "SM" + "a" * 32
    assert report.status == status
    assert report.error_code is None
    assert report.at is None


def test_status_callback_keeps_twilios_error_code() -> None:
    report = parse_status(
        {
            "MessageSid": "SM" + "a" * 32,
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
            "To": CALLER,
        }
    )

    assert (report.status, report.error_code) == ("undelivered", "30003")


def test_status_callback_reads_the_older_sms_field_names() -> None:
    report = parse_status({"SmsSid": "SM" + "b" * 32, "SmsStatus": "sent", "ErrorCode": ""})

    assert (report.provider_message_id, report.status, report.error_code) == (
        "SM" + "b" * 32,
        "sent",
        None,
    )


@pytest.mark.parametrize(
    "form",
    [{"MessageStatus": "delivered"}, {"MessageSid": "SM" + "a" * 32}, {}],
)
def test_status_callback_missing_required_fields_is_a_payload_error(form: dict[str, str]) -> None:
    with pytest.raises(TwilioPayloadError):
        parse_status(form)


def test_provider_exposes_the_parsers() -> None:
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    assert TwilioProvider.parse_status(form) == parse_status(form)


def test_inbound_text_is_read_and_sender_normalized() -> None:
    inbound = parse_inbound(
        {
            "MessageSid": "SM" + "c" * 32,
            "From": "+16135550142",
            "To": "+13438036032",
            "Body": "  stop ",
            "NumSegments": "1",
            "OptOutType": "STOP",
            "FromCity": "OTTAWA",
            "FromZip": "K1A 0A1",
        }
    )

    assert inbound.from_phone == CALLER
    assert inbound.to == "+13438036032"
    assert inbound.body == "  stop "  # keyword matching (and trimming) is the handler's job
    assert inbound.provider_message_id == "SM" + "c" * 32
    assert inbound.extra == {"NumSegments": "1", "OptOutType": "STOP"}  # no location


def test_inbound_from_a_short_code_keeps_the_sender_as_sent() -> None:
    inbound = parse_inbound({"MessageSid": "SM" + "c" * 32, "From": "89361", "To": "+13438036032"})

    assert inbound.from_phone == "89361"
    assert inbound.body == ""


@pytest.mark.parametrize(
    "form", [{"From": CALLER, "Body": "hi"}, {"MessageSid": "SM1", "Body": "x"}]
)
def test_inbound_missing_required_fields_is_a_payload_error(form: dict[str, str]) -> None:
    with pytest.raises(TwilioPayloadError) as info:
        parse_inbound(form)
    assert "5550142" not in str(info.value)
