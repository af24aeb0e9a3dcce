"""``callerconnect sms check``: does the configured provider accept us, texting nobody."""

from __future__ import annotations

from callerconnect.adapters.sms.twilio_check import CheckResult, check_twilio
from callerconnect.config import Settings

SMPP_BIND_WAIT = 10.0


def check_provider(settings: Settings, *, bind_wait: float = SMPP_BIND_WAIT) -> list[CheckResult]:
    sms = settings.sms
    if sms.provider == "twilio":
        assert sms.twilio.account_sid and sms.twilio.auth_token  # checked by config
        return check_twilio(
            account_sid=sms.twilio.account_sid,
            auth_token=sms.twilio.auth_token.get_secret_value(),
            sender=sms.sender,
            api_base=sms.twilio.api_base,
            inbound_url=f"{settings.public_base_url}/webhooks/twilio/inbound",
            timeout=sms.twilio.timeout.total_seconds(),
        )
    if sms.provider == "smpp":
        return [_check_smpp(settings, bind_wait)]
    return [CheckResult("console", True, "texts are printed, not sent: nothing to check")]


def _check_smpp(settings: Settings, bind_wait: float) -> CheckResult:
    from callerconnect.bootstrap import build_provider

    smpp = settings.sms.smpp
    provider = build_provider(settings)
    start = getattr(provider, "start", None)
    wait_bound = getattr(provider, "wait_bound", None)
    close = getattr(provider, "close", None)
    assert callable(start) and callable(wait_bound) and callable(close)
    try:
        start()
        bound = bool(wait_bound(bind_wait))
    finally:
        close()  # unbinds
    where = f"{smpp.host}:{smpp.port} as {smpp.system_id}"
    if bound:
        return CheckResult("SMPP bind", True, f"bound and unbound at {where}")
    return CheckResult(
        "SMPP bind",
        False,
        f"no transceiver bind at {where} within {bind_wait:.0f} s; check sms.smpp.host, "
        "sms.smpp.port, sms.smpp.system_id and sms.smpp.password",
    )
