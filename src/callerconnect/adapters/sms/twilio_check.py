"""Ask Twilio whether the credentials and the sender work, without sending anything.

Two read-only requests of the REST API (2010-04-01): the Account resource
(``GET /Accounts/{Sid}.json``: 401 for wrong credentials, ``status`` ``active``,
``suspended`` or ``closed``) and the IncomingPhoneNumbers list filtered by the sender
(``GET /Accounts/{Sid}/IncomingPhoneNumbers.json?PhoneNumber=...``: the number must be
one of the account's, able to send SMS, and its ``sms_url`` is where callers' texts go).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class CheckResult:
    what: str
    ok: bool
    detail: str


def check_twilio(
    *,
    account_sid: str,
    auth_token: str,
    sender: str,
    api_base: str,
    inbound_url: str,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> list[CheckResult]:
    base = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
    results: list[CheckResult] = []
    with httpx.Client(
        auth=httpx.BasicAuth(account_sid, auth_token),
        timeout=timeout,
        transport=transport,
    ) as client:
        try:
            account = client.get(f"{base}.json")
        except httpx.RequestError as error:
            return [
                CheckResult(
                    "Twilio API",
                    False,
                    f"cannot reach {api_base} ({type(error).__name__}); "
                    "check sms.twilio.api_base and the network",
                )
            ]
        if account.status_code in (401, 403, 404):
            return [
                CheckResult(
                    "credentials",
                    False,
                    f"Twilio refused them (HTTP {account.status_code}); check "
                    "sms.twilio.account_sid and sms.twilio.auth_token",
                )
            ]
        if account.status_code != 200:
            return [
                CheckResult(
                    "credentials", False, f"Twilio answered HTTP {account.status_code}; try again"
                )
            ]
        status = account.json().get("status")
        results.append(
            CheckResult(
                "credentials",
                status == "active",
                f"account {account_sid} is {status}"
                + ("" if status == "active" else ": texts cannot be sent"),
            )
        )
        numbers = client.get(f"{base}/IncomingPhoneNumbers.json", params={"PhoneNumber": sender})
        found = numbers.json().get("incoming_phone_numbers", []) if numbers.is_success else []
        if not found:
            results.append(
                CheckResult(
                    "sender",
                    False,
                    f"{sender} is not a number of this account; check sms.sender",
                )
            )
            return results
        number = found[0]
        capable = bool(number.get("capabilities", {}).get("sms", False))
        results.append(
            CheckResult(
                "sender",
                capable,
                f"{sender} belongs to the account" + ("" if capable else " but cannot send SMS"),
            )
        )
        sms_url = number.get("sms_url") or ""
        advice = "" if sms_url == inbound_url else f"; set the number's SMS URL to {inbound_url}"
        results.append(
            CheckResult(
                "inbound webhook",
                sms_url == inbound_url,
                f"callers' texts go to {sms_url or '(nowhere)'}{advice}",
            )
        )
    return results
