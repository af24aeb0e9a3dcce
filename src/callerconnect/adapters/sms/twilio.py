"""Twilio's Programmable Messaging REST API: the send path and the webhook payloads.

Sending is one ``POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with
HTTP basic auth and form fields ``To``, ``From``, ``Body`` and, when configured,
``StatusCallback`` and ``ValidityPeriod``. We talk HTTP with httpx directly rather than
through the ``twilio`` helper library: the request is tiny, the transport must be
injectable for tests, and every failure has to be translated here, at the edge, into a
:class:`SendError` with a stable ``code`` and ``retryable`` flag.

Error translation (checked in this order; ``provider_code`` keeps Twilio's numeric code):

=========================================================  ==================  =========
Twilio answer                                              ``code``            retryable
=========================================================  ==================  =========
HTTP 429, or code 20429 / 21611 / 14107 (rate or queue)    ``throttled``       yes
HTTP 5xx                                                   ``unavailable``     yes
code 21610 (the recipient replied STOP to our number)      ``opted_out``       no
code 21211 21217 21265 21266 21268 21401 21407 21421       ``invalid_number``  no
21612 21614; a ``To`` not in E.164 (refused unsent)        ``invalid_number``  no
HTTP 401, or code 20003 / 10001 (credentials, account)     ``auth``            no
HTTP 408; connect/read/write timeout                       ``timeout``         yes
any other 4xx                                              ``rejected``        no
1xx/3xx; connection refused/reset, TLS, protocol error     ``unavailable``     yes
2xx without a message ``sid``                              ``bad_response``    no
=========================================================  ==================  =========

``bad_response`` is not retryable on purpose: Twilio said yes, so the text may be on
its way, and a retry could send it twice.

Twilio echoes the destination number in its error messages ("The 'To' number
+16135550142 is not a valid phone number."); ``SendError.detail`` replaces it with the
masked form and blanks anything else that looks like a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from callerconnect.adapters.sms.base import (
    InboundSms,
    OutgoingSms,
    SendError,
    SendResult,
    StatusReport,
)
from callerconnect.adapters.sms.phone import InvalidPhone, mask_phone, normalize_phone

__all__ = [
    "API_VERSION",
    "VALIDITY_PERIOD_MAX",
    "VALIDITY_PERIOD_MIN",
    "TwilioPayloadError",
    "TwilioProvider",
    "map_message_status",
    "parse_inbound",
    "parse_status",
]

API_VERSION = "2010-04-01"
# Twilio documents ValidityPeriod as whole seconds in 1..36000 (10 hours); outside that
# range the request fails with error 21624 instead of sending.
VALIDITY_PERIOD_MIN = 1
VALIDITY_PERIOD_MAX = 36_000

_THROTTLED_CODES = frozenset({20429, 21611, 14107})
_AUTH_CODES = frozenset({20003, 10001})
_OPTED_OUT_CODES = frozenset({21610})
_INVALID_NUMBER_CODES = frozenset(
    {21211, 21217, 21265, 21266, 21268, 21401, 21407, 21421, 21612, 21614}
)

# Twilio's MessageStatus values, folded into the outbox's vocabulary. Everything before
# a carrier verdict is "sent" (the provider has it); "read" implies delivered;
# "partially_delivered" counts as undelivered because the caller may have missed the part
# that matters; "canceled" never left Twilio. Unknown values also fold into "sent": the
# outbox only moves forward, so "sent" can never undo a later status, and an unknown
# word from Twilio must not fail the webhook (see :func:`map_message_status`).
_STATUS_MAP: Mapping[str, str] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "partially_delivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

# Inbound webhook fields worth keeping. Twilio also sends FromCity, FromZip, FromState…:
# the caller's location is personal data we have no use for, so it is dropped here.
_INBOUND_EXTRA_KEYS = (
    "AccountSid",
    "MessagingServiceSid",
    "NumSegments",
    "NumMedia",
    "OptOutType",
    "ApiVersion",
)

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Seven or more digits, possibly with separators: anything in an error text that could be
# a phone number. Masked output (``+1613***0142``) has too few digits in a row to match.
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().\-]{5,}\d")
_MAX_DETAIL = 200
_MAX_ERROR_BODY = 64 * 1024


# Delivery error codes Twilio puts on undelivered/failed status callbacks
# (https://www.twilio.com/docs/api/errors), judged by whether sending the same text
# again later could reach the caller. Landlines, unknown or deactivated numbers,
# carrier-level opt-outs and blocks are permanent; queue overflow, congestion, rate
# limits and "unknown" carrier errors are retryable. Codes not listed: unknown (None).
DELIVERY_ERROR_RETRYABLE: Mapping[str, bool] = {
    "30001": True,  # queue overflow
    "30002": False,  # account suspended
    "30003": True,  # unreachable destination handset (switched off, out of coverage)
    "30004": False,  # message blocked (by the recipient or their carrier)
    "30005": False,  # unknown destination handset
    "30006": False,  # landline or unreachable carrier
    "30007": False,  # carrier violation / filtered as spam
    "30008": True,  # unknown error
    "30009": True,  # missing segment
    "30010": False,  # message price exceeds max price
    "30017": True,  # carrier network congestion
    "30018": False,  # destination carrier requires sender registration
    "30022": True,  # rate limits exceeded (US A2P 10DLC)
    "30023": True,  # daily message cap reached
    "30024": False,  # numeric sender id not provisioned
    "30032": False,  # toll-free number not verified
    "30034": False,  # message from an unregistered number
    "30036": False,  # validity period expired: the moment has passed, do not resend
    "21610": False,  # the recipient replied STOP to our number (carrier-level opt-out)
    "21612": False,  # not reachable from this sender
    "21614": False,  # not a mobile number
}


def classify_delivery_error(code: str | None) -> bool | None:
    """Whether a delivery error code is retryable (None: no code, or not one we know)."""
    if not code:
        return None
    return DELIVERY_ERROR_RETRYABLE.get(code.strip())


class TwilioPayloadError(ValueError):
    """A webhook form lacks a field Twilio always sends; answer 400, change nothing."""


def map_message_status(raw: str) -> str:
    """Fold a Twilio ``MessageStatus`` into ``sent``/``delivered``/``undelivered``/``failed``."""
    return _STATUS_MAP.get(raw.strip().lower(), "sent")


def parse_status(form: Mapping[str, str]) -> StatusReport:
    """Read a status callback (``MessageSid``, ``MessageStatus``, ``ErrorCode``).

    Pure: signature checking and the forward-only update belong to the caller. ``at`` is
    left empty: Twilio's only timestamp here (``RawDlrDoneDate``) is the carrier's, in an
    unstated time zone, so the webhook should stamp the time it received the callback.
    Older payloads name the fields ``SmsSid`` / ``SmsStatus``; both are accepted.
    """
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip()
    if not sid:
        raise TwilioPayloadError("status callback without MessageSid")
    if not raw_status:
        raise TwilioPayloadError("status callback without MessageStatus")
    error_code = (form.get("ErrorCode") or "").strip() or None
    return StatusReport(
        provider_message_id=sid,
        status=map_message_status(raw_status),
        error_code=error_code,
        retryable=classify_delivery_error(error_code),
    )


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    """Read an inbound text (``From``, ``To``, ``Body``, ``MessageSid``).

    ``from_phone`` is normalized to E.164 so it matches the numbers we stored (an opt-out
    must find its caller); a sender that is not a phone number (short code, alphanumeric
    id) is kept as sent. ``extra`` keeps a few non-personal fields, never location.
    """
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    sender = (form.get("From") or "").strip()
    if not sid:
        raise TwilioPayloadError("inbound message without MessageSid")
    if not sender:
        raise TwilioPayloadError("inbound message without From")
    try:
        from_phone = normalize_phone(sender)
    except InvalidPhone:
        from_phone = sender
    extra = {key: form[key] for key in _INBOUND_EXTRA_KEYS if form.get(key)}
    return InboundSms(
        from_phone=from_phone,
        to=(form.get("To") or "").strip(),
        body=form.get("Body") or "",
        provider_message_id=sid,
        extra=extra,
    )


def _clean(text: str, to: str) -> str:
    """One line, no phone numbers, bounded length: safe for logs and the database."""
    if to:
        text = text.replace(to, mask_phone(to))
    text = _PHONE_LIKE.sub("***", text)
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return text


def _twilio_error(response: httpx.Response) -> tuple[int | None, str]:
    """Twilio's ``code`` and ``message`` from an error body, if it is Twilio's JSON."""
    if len(response.content) > _MAX_ERROR_BODY:
        return None, ""
    try:
        payload: Any = response.json()
    except ValueError:  # HTML from a proxy, empty body, bad encoding
        return None, ""
    if not isinstance(payload, dict):
        return None, ""
    raw_code = payload.get("code")
    code: int | None = None
    if isinstance(raw_code, int) and not isinstance(raw_code, bool):
        code = raw_code
    elif isinstance(raw_code, str) and raw_code.strip().isdigit():
        code = int(raw_code)
    message = payload.get("message")
    return code, message if isinstance(message, str) else ""


#: Longest pause a Retry-After header may impose; a bigger value is capped, not obeyed.
MAX_RETRY_AFTER = 300.0


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Twilio's ``Retry-After`` (whole seconds) as a float, or None when absent/unusable.

    The HTTP-date form is not used by Twilio and is ignored rather than guessed.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value.isdigit():
        return None
    return min(float(value), MAX_RETRY_AFTER)


def _retry_after(response: httpx.Response) -> str:
    seconds = retry_after_seconds(response)
    return f"; retry after {seconds:g}s" if seconds is not None else ""


def _classify(status: int, code: int | None) -> tuple[str, bool]:
    """Map an HTTP status and Twilio code to ``(code, retryable)``; see the module table."""
    if status == 429 or code in _THROTTLED_CODES:
        return "throttled", True
    if status >= 500:
        return "unavailable", True
    if code in _OPTED_OUT_CODES:
        return "opted_out", False
    if code in _INVALID_NUMBER_CODES:
        return "invalid_number", False
    if status == 401 or code in _AUTH_CODES:
        return "auth", False
    if status == 408:
        return "timeout", True
    if 400 <= status < 500:
        return "rejected", False
    # 1xx/3xx: something between us and Twilio (a proxy, a moved gateway) is wrong, not
    # this text. Retrying later is right once the operator fixes it.
    return "unavailable", True


class TwilioProvider:
    """Send texts through Twilio (or a gateway that speaks its Messages API).

    One :class:`httpx.Client` is created here and reused, so connections are kept alive
    between texts; it is safe to call :meth:`send` from several threads. Call
    :meth:`close` (or use the provider as a context manager) when done.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_base: str = "https://api.twilio.com",
        status_callback_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        # Checked here so a bad configuration stops start-up instead of failing each text.
        for label, value in (
            ("account_sid", account_sid),
            ("auth_token", auth_token),
            ("sender", sender),
        ):
            if not value or not value.strip():
                raise ValueError(f"Twilio {label} is empty")
        if timeout <= 0:
            raise ValueError("Twilio timeout must be positive")
        base = httpx.URL(api_base.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("Twilio api_base must be an http(s) URL")
        self._account_sid = account_sid
        self._sender = sender
        self._status_callback_url = status_callback_url or None
        self._url = (
            f"{str(base).rstrip('/')}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        self._client = httpx.Client(
            auth=httpx.BasicAuth(account_sid, auth_token),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "callerconnect"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        # Never the token; only enough of the SID to tell accounts apart.
        return f"TwilioProvider(account_sid={self._account_sid[:6]}…, url={self._url!r})"

    @property
    def messages_url(self) -> str:
        return self._url

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TwilioProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    parse_status = staticmethod(parse_status)
    parse_inbound = staticmethod(parse_inbound)

    def form_for(self, message: OutgoingSms) -> dict[str, str]:
        """The exact form fields sent for ``message`` (also used by tests and dry runs)."""
        form = {"To": message.to, "From": self._sender, "Body": message.body}
        if self._status_callback_url:
            # Our reference rides along in the callback URL (Twilio signs the whole URL,
            # query included): a callback for a text whose answer we never saw (a read
            # timeout, a crash before the commit) still finds its outbox row, so the
            # dispatcher records the sid instead of sending the text a second time.
            separator = "&" if "?" in self._status_callback_url else "?"
            form["StatusCallback"] = (
                f"{self._status_callback_url}{separator}ref={quote(message.reference, safe='')}"
            )
        if message.validity_seconds is not None:
            # Clamped, not passed through: Twilio refuses the whole request (21624) when the
            # value is outside its documented range, and the dispatcher still wants the text
            # out. Whether a text whose moment has passed should go at all is its decision.
            validity = min(max(message.validity_seconds, VALIDITY_PERIOD_MIN), VALIDITY_PERIOD_MAX)
            form["ValidityPeriod"] = str(validity)
        return form

    def send(self, message: OutgoingSms) -> SendResult:
        if not _E164.match(message.to):
            # Twilio would answer 21211; no need to spend a request (or a log line) on it.
            raise SendError(
                "invalid_number", retryable=False, detail="destination is not in E.164 form"
            )
        form = self.form_for(message)
        message.check_in_time()  # the last moment before the request is written
        try:
            response = self._client.post(self._url, data=form)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise SendError(
                "timeout", retryable=True, detail="could not connect in time; not sent"
            ) from None
        except httpx.TimeoutException:
            raise SendError(
                "timeout",
                retryable=True,
                detail="no answer in time; Twilio may have accepted the text",
            ) from None
        except httpx.RequestError as exc:
            # Connection refused/reset, TLS or protocol failure. ``from None`` and only the
            # class name: httpx messages can carry the URL and, via proxies, request details.
            raise SendError(
                "unavailable", retryable=True, detail=f"connection failed: {type(exc).__name__}"
            ) from None

        if 200 <= response.status_code < 300:
            return self._accepted(response)

        twilio_code, twilio_message = _twilio_error(response)
        code, retryable = _classify(response.status_code, twilio_code)
        detail = f"HTTP {response.status_code}"
        if twilio_code is not None:
            detail += f" Twilio {twilio_code}"
        if twilio_message:
            detail += f": {_clean(twilio_message, message.to)}"
        retry_after = None
        if code == "throttled":
            detail += _retry_after(response)
            retry_after = retry_after_seconds(response)
        raise SendError(
            code,
            retryable=retryable,
            provider_code=str(twilio_code) if twilio_code is not None else None,
            detail=detail,
            retry_after=retry_after,
        )

    @staticmethod
    def _accepted(response: httpx.Response) -> SendResult:
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        sid = payload.get("sid") if isinstance(payload, dict) else None
        if not isinstance(sid, str) or not sid.strip():
            raise SendError(
                "bad_response",
                retryable=False,
                detail=f"HTTP {response.status_code} without a message sid; the text may be sent",
            )
        raw_status = payload.get("status")
        status = map_message_status(raw_status) if isinstance(raw_status, str) else "sent"
        return SendResult(provider_message_id=sid.strip(), status=status)
