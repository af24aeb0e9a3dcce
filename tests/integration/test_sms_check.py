"""`callerconnect sms check` asks the provider, texting nobody: Twilio's Account and
IncomingPhoneNumbers resources (the fake speaks them as documented), an SMPP bind and
unbind against the test SMSC."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from callerconnect.config import load_settings
from callerconnect.entrypoints.cli import main
from callerconnect.entrypoints.sms_check import check_provider
from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.support.smsc import FakeSmsc, free_port

SENDER = "+13438036032"
PUBLIC = "https://callerconnect.example.org"


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("CALLERCONNECT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))
    ours, root = logging.getLogger("callerconnect"), logging.getLogger()
    saved = (ours.handlers[:], ours.level, ours.propagate, root.handlers[:])
    yield
    ours.handlers[:], ours.level, ours.propagate, root.handlers[:] = saved


def twilio_env(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTwilio, token: str = DEFAULT_AUTH_TOKEN
) -> None:
    for name, value in {
        "CALLERCONNECT_SMS__PROVIDER": "twilio",
        "CALLERCONNECT_SMS__SENDER": SENDER,
        "CALLERCONNECT_PUBLIC_BASE_URL": PUBLIC,
        "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": token,
        "CALLERCONNECT_SMS__TWILIO__API_BASE": fake.api_base,
    }.items():
        monkeypatch.setenv(name, value)


def test_twilio_credentials_sender_and_webhook_all_check_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    numbers = {SENDER: f"{PUBLIC}/webhooks/twilio/inbound"}
    with FakeTwilio(incoming_numbers=numbers) as fake:
        twilio_env(monkeypatch, fake)
        assert main(["sms", "check"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ["ok", "ok", "ok"]
    assert not fake.messages  # nobody was texted
    assert {r.method for r in fake.requests} == {"GET"}


def test_wrong_twilio_credentials_name_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeTwilio(incoming_numbers={SENDER: ""}) as fake:
        twilio_env(monkeypatch, fake, token="not-the-token")
        assert main(["sms", "check"]) == 1
    out = capsys.readouterr().out
    assert "FAILED credentials" in out and "sms.twilio.auth_token" in out
    assert "not-the-token" not in out


def test_a_sender_the_account_does_not_own_names_sms_sender(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeTwilio(incoming_numbers={"+13435550000": ""}) as fake:
        twilio_env(monkeypatch, fake)
        assert main(["sms", "check"]) == 1
    out = capsys.readouterr().out
    assert "FAILED sender" in out and "sms.sender" in out


def test_a_suspended_account_and_a_wrong_webhook_are_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    numbers = {SENDER: "https://old.example.org/sms"}
    with FakeTwilio(incoming_numbers=numbers, account_status="suspended") as fake:
        twilio_env(monkeypatch, fake)
        assert main(["sms", "check"]) == 1
    out = capsys.readouterr().out
    assert "is suspended" in out
    assert f"set the number's SMS URL to {PUBLIC}/webhooks/twilio/inbound" in out


def smpp_settings(port: int) -> object:
    return load_settings(
        environ={
            "CALLERCONNECT_SMS__PROVIDER": "smpp",
            "CALLERCONNECT_SMS__SMPP__HOST": "127.0.0.1",
            "CALLERCONNECT_SMS__SMPP__PORT": str(port),
            "CALLERCONNECT_SMS__SMPP__SYSTEM_ID": "callerconnect",
            "CALLERCONNECT_SMS__SMPP__PASSWORD": "secret",
        }
    )


def test_smpp_check_binds_and_unbinds_without_submitting() -> None:
    with FakeSmsc() as smsc:
        [result] = check_provider(smpp_settings(smsc.port))  # type: ignore[arg-type]
        assert result.ok, result.detail
        assert smsc.binds == 1
        assert smsc.submitted == []
    assert not smsc.errors


def test_smpp_check_names_the_settings_when_no_bind_comes() -> None:
    [result] = check_provider(smpp_settings(free_port()), bind_wait=1.0)  # type: ignore[arg-type]
    assert not result.ok
    assert "sms.smpp.host" in result.detail and "secret" not in result.detail
