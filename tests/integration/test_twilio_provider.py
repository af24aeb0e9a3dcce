"""The Twilio provider against a Twilio-compatible server over real HTTP on 127.0.0.1.

Every error class the dispatcher branches on is produced by the fake server the way
Twilio documents it, and the provider must translate it into the right ``SendError``
— without ever putting the caller's number into the error.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from callerconnect.adapters.sms.base import OutgoingSms, SendError, SlotMissed, SmsProvider
from callerconnect.adapters.sms.twilio import TwilioProvider
from tests.support.fake_twilio import FakeTwilio, Fault

SENDER = "+13438036032"
CALLER = "+16135550142"
CALLBACK = "https://callerconnect.example.org/webhooks/twilio/status"
# The outbox reference rides in the callback URL so a callback finds its row by itself.
CALLBACK_WITH_REF = CALLBACK + "?ref=inc-1%3Aconfirmation%3A0"


def sms(to: str = CALLER, body: str = "Ottawa Police: we received your call. Case 2024-123456.",
        validity: int | None = None) -> OutgoingSms:  # fmt: skip
    return OutgoingSms(
        to=to, body=body, reference="inc-1:confirmation:0", validity_seconds=validity
    )


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(senders=[SENDER]) as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture
def make_provider(fake: FakeTwilio) -> Iterator[Callable[..., TwilioProvider]]:
    made: list[TwilioProvider] = []

    def make(**overrides: Any) -> TwilioProvider:
        kwargs: dict[str, Any] = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "sender": SENDER,
            "api_base": fake.api_base,
            "timeout": 5.0,
        }
        kwargs.update(overrides)
        provider = TwilioProvider(**kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:  # before the fake stops: no half-open sockets left behind
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., TwilioProvider]) -> TwilioProvider:
    return make_provider()


def assert_no_phone_number(error: SendError, number: str = CALLER) -> None:
    national = number[2:]
    for text in (str(error), error.detail, repr(error), *map(str, error.args)):
        digits = re.sub(r"\D", "", text)
        assert national not in digits, text
        assert number not in text, text


# -- success -------------------------------------------------------------------------


def test_send_posts_exactly_the_documented_form_with_basic_auth(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    result = provider.send(sms())

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    expected_auth = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": CALLER,
        "From": SENDER,
        "Body": "Ottawa Police: we received your call. Case 2024-123456.",
    }
    [message] = fake.messages
    assert result.provider_message_id == message.sid
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_message_id)
    assert result.status == "sent"  # Twilio's "queued": accepted by the provider


def test_status_callback_and_validity_period_are_sent_when_configured(
    fake: FakeTwilio, make_provider: Callable[..., TwilioProvider]
) -> None:
    provider = make_provider(status_callback_url=CALLBACK)

    provider.send(sms(validity=3600))

    [request] = fake.requests
    assert request.form["StatusCallback"] == CALLBACK_WITH_REF
    assert request.form["ValidityPeriod"] == "3600"
    assert set(request.form) == {"To", "From", "Body", "StatusCallback", "ValidityPeriod"}


@pytest.mark.parametrize(("asked", "sent"), [(0, "1"), (-5, "1"), (1, "1"), (36_000, "36000"),
                                             (86_400, "36000")])  # fmt: skip
def test_validity_period_is_clamped_to_twilios_documented_range(
    fake: FakeTwilio, provider: TwilioProvider, asked: int, sent: str
) -> None:
    provider.send(sms(validity=asked))  # the fake refuses anything outside 1..36000 (21624)

    assert fake.requests[-1].form["ValidityPeriod"] == sent


def test_bilingual_body_with_accents_arrives_unchanged(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    body = "Police d'Ottawa : nous avons reçu votre appel. Dossier 2024-123456. Répondez ARRÊT."

    provider.send(sms(body=body))

    assert fake.messages[0].body == body


def test_provider_reuses_its_client_across_many_sends(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    ids = {provider.send(sms()).provider_message_id for _ in range(5)}

    assert len(ids) == 5
    assert len(fake.messages) == 5


def test_a_text_past_its_rate_slot_is_not_posted(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    """``in_time`` is asked at the last moment before the request: False (the text was
    held past its rate slot) sends nothing and says so; True sends as ever."""
    asked: list[bool] = []

    def late() -> bool:
        asked.append(False)
        return False

    with pytest.raises(SlotMissed):
        provider.send(replace(sms(), in_time=late))
    assert asked == [False]
    assert fake.requests == []
    provider.send(replace(sms(), in_time=lambda: True))
    assert len(fake.requests) == 1


def test_twilio_provider_satisfies_the_provider_interface(provider: TwilioProvider) -> None:
    as_interface: SmsProvider = provider
    assert as_interface.name == "twilio"


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "provider_code"),
    [
        (Fault.HTTP_500, "unavailable", "20500"),
        (Fault.HTTP_503, "unavailable", None),  # a load balancer's HTML page: no Twilio code
        (Fault.THROTTLE, "throttled", "20429"),
    ],
)
def test_server_side_trouble_is_retryable(
    fake: FakeTwilio, provider: TwilioProvider, fault: Fault, code: str, provider_code: str | None
) -> None:
    fake.fail_next(1, fault)

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable) == (code, True)
    assert info.value.provider_code == provider_code
    assert fake.messages == []
    assert_no_phone_number(info.value)


def test_throttled_error_passes_on_twilios_retry_after(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.fail_next(1, Fault.THROTTLE)

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert "retry after 1s" in info.value.detail


@pytest.mark.parametrize(
    ("twilio_code", "code"),
    [
        (21211, "invalid_number"),
        (21612, "invalid_number"),
        (21614, "invalid_number"),
        (21610, "opted_out"),
    ],
)
def test_refusals_for_this_number_are_final(
    fake: FakeTwilio, provider: TwilioProvider, twilio_code: int, code: str
) -> None:
    fake.reject_number(CALLER, twilio_code)

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable) == (code, False)
    assert info.value.provider_code == str(twilio_code)
    assert_no_phone_number(info.value)


def test_twilio_echo_of_the_number_is_masked_in_the_detail(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.reject_number(CALLER, 21211)  # "The 'To' number +16135550142 is not a valid ..."

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert "+1613***0142" in info.value.detail
    assert "HTTP 400 Twilio 21211" in info.value.detail


def test_wrong_credentials_are_an_auth_error_that_retrying_cannot_fix(
    fake: FakeTwilio, make_provider: Callable[..., TwilioProvider]
) -> None:
    provider = make_provider(auth_token="not-the-token")

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable, info.value.provider_code) == (
        "auth",
        False,
        "20003",
    )
    assert fake.messages == []


def test_sender_the_account_does_not_own_is_rejected_not_retried(
    fake: FakeTwilio, make_provider: Callable[..., TwilioProvider]
) -> None:
    provider = make_provider(sender="+13435550100")

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable, info.value.provider_code) == (
        "rejected",
        False,
        "21606",
    )
    assert_no_phone_number(info.value)
    assert_no_phone_number(info.value, "+13435550100")


def test_slow_answer_is_a_retryable_timeout_though_twilio_may_have_sent_it(
    fake: FakeTwilio, make_provider: Callable[..., TwilioProvider]
) -> None:
    provider = make_provider(timeout=0.5)
    fake.fail_next(1, Fault.SLOW, delay=1.5)

    with pytest.raises(SendError) as info:
        provider.send(sms())

    assert (info.value.code, info.value.retryable) == ("timeout", True)
    assert "may have accepted" in info.value.detail
    assert_no_phone_number(info.value)
    # The server finishes the request after the client gave up: the very ambiguity the
    # detail warns about (a retry can duplicate the text).
    deadline = time.monotonic() + 5
    while not fake.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake.messages) == 1
    # And the provider still works for the next text.
    assert provider.send(sms()).provider_message_id == fake.messages[-1].sid


def test_nothing_listening_is_retryable_unavailable(
    make_provider: Callable[..., TwilioProvider],
) -> None:
    # A bound socket that never listens refuses connections, and holding it keeps any
    # other test from taking the port meanwhile.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        provider = make_provider(api_base=f"http://127.0.0.1:{port}")

        with pytest.raises(SendError) as info:
            provider.send(sms())

    assert (info.value.code, info.value.retryable) == ("unavailable", True)
    assert_no_phone_number(info.value)


def test_outage_window_fails_every_request_then_recovers(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.fail_for(1.0, Fault.HTTP_500)

    codes = []
    for _ in range(2):
        with pytest.raises(SendError) as info:
            provider.send(sms())
        codes.append(info.value.code)
    time.sleep(1.05)
    result = provider.send(sms())

    assert codes == ["unavailable", "unavailable"]
    assert [m.sid for m in fake.messages] == [result.provider_message_id]


def test_next_n_faults_are_consumed_in_order(fake: FakeTwilio, provider: TwilioProvider) -> None:
    fake.fail_next(1, Fault.THROTTLE)
    fake.fail_next(1, Fault.HTTP_503)

    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(provider.send(sms()).status)
        except SendError as error:
            outcomes.append(error.code)

    assert outcomes == ["throttled", "unavailable", "sent"]
    assert [r.status for r in fake.requests] == [429, 503, 201]


def test_destination_not_in_e164_is_refused_without_a_request(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    with pytest.raises(SendError) as info:
        provider.send(sms(to="613-555-0142"))

    assert (info.value.code, info.value.retryable) == ("invalid_number", False)
    assert fake.requests == []
    assert_no_phone_number(info.value)


# -- the fake itself behaves like Twilio's documentation -----------------------------


@pytest.mark.parametrize(
    ("form", "twilio_code"),
    [
        ({"From": SENDER, "Body": "x"}, 21604),
        ({"To": CALLER, "Body": "x"}, 21603),
        ({"To": CALLER, "From": SENDER}, 21602),
        ({"To": CALLER, "From": SENDER, "Body": "x", "ValidityPeriod": "36001"}, 21624),
        ({"To": CALLER, "From": SENDER, "Body": "x", "StatusCallback": "not a url"}, 21609),
    ],
)
def test_fake_validates_required_fields_like_twilio(
    fake: FakeTwilio, form: dict[str, str], twilio_code: int
) -> None:
    with httpx.Client(auth=(fake.account_sid, fake.auth_token)) as client:
        response = client.post(fake.messages_url, data=form)

    assert response.status_code == 400
    assert response.json() == {
        "code": twilio_code,
        "message": response.json()["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{twilio_code}",
        "status": 400,
    }


def test_fake_answers_201_with_the_documented_message_shape(fake: FakeTwilio) -> None:
    with httpx.Client(auth=(fake.account_sid, fake.auth_token)) as client:
        response = client.post(
            fake.messages_url, data={"To": CALLER, "From": SENDER, "Body": "ê" * 71}
        )

    assert response.status_code == 201
    resource = response.json()
    assert set(resource) >= {
        "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
        "direction", "error_code", "error_message", "from", "num_media", "num_segments",
        "price", "price_unit", "sid", "status", "subresource_uris", "to", "uri",
    }  # fmt: skip
    assert resource["status"] == "queued"
    assert resource["num_segments"] == "2"  # 71 UCS-2 characters
    assert re.fullmatch(
        r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", resource["date_created"]
    )
    assert resource["uri"] == (
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{resource['sid']}.json"
    )


def test_fake_without_credentials_answers_401_with_code_20003(fake: FakeTwilio) -> None:
    with httpx.Client() as client:
        response = client.post(fake.messages_url, data={"To": CALLER, "From": SENDER, "Body": "x"})

    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert fake.messages == []


# -- documented response, through httpx.MockTransport ---------------------------------

# The "Send an SMS" example response from Twilio's Messages resource documentation
# (https://www.twilio.com/docs/messaging/api/message-resource), as published.
DOCUMENTED_CREATE_RESPONSE = {
    "account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "api_version": "2010-04-01",
    "body": "Hi there",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+15557122661",
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": None,
    "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "status": "queued",
    "subresource_uris": {
        "media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"  # noqa: E501
    },
    "to": "+15558675310",
    "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json",  # noqa: E501
}  # fmt: skip


def test_documented_create_response_yields_the_message_sid() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=DOCUMENTED_CREATE_RESPONSE)

    with TwilioProvider(
        "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "token",
        "+15557122661",
        status_callback_url=CALLBACK,
        transport=httpx.MockTransport(handler),
    ) as provider:
        result = provider.send(sms(to="+15558675310", body="Hi there", validity=600))

    assert result.provider_message_id == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert result.status == "sent"
    [request] = seen
    assert str(request.url) == (
        "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages.json"
    )
    assert parse_qs(request.content.decode()) == {
        "To": ["+15558675310"],
        "From": ["+15557122661"],
        "Body": ["Hi there"],
        "StatusCallback": [CALLBACK_WITH_REF],
        "ValidityPeriod": ["600"],
    }
