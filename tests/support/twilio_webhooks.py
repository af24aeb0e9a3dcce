"""Twilio's side of the webhooks, for tests: the signature and a server that calls back.

:func:`twilio_signature` is written from Twilio's documentation, independently of the
``twilio`` library that the application uses to check it (a shared mistake would
otherwise go unnoticed); ``tests/unit/test_webhook_signature.py`` checks it against the
documented example.

:class:`CallbackTwilio` is the Twilio-compatible test server that, like Twilio, then
posts signed status callbacks (``sent``, then ``delivered`` or a chosen failure) to
each message's ``StatusCallback`` URL. Twilio signs the URL *as configured* (the public
one); ``deliver_to`` is where the test's server really listens, as a reverse proxy would
forward.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.support.dispatch import TimedFakeTwilio

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
OUR_NUMBER = "+13438036032"
_inbound_ids = itertools.count(1)


def inbound_form(
    body: str, sender: str, sid: str | None = None, to: str = OUR_NUMBER
) -> dict[str, str]:
    """An incoming text as Twilio posts it (its documented fields, location included)."""
    sid = sid or f"SM{next(_inbound_ids):032x}"
    return {
        "ToCountry": "CA",
        "ToState": "ON",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "OTTAWA",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "ON",
        "SmsStatus": "received",
        "FromCity": "OTTAWA",  # location: never stored
        "Body": body,
        "FromCountry": "CA",
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def status_form(
    sid: str, status: str, to: str, error: str | None = None, sender: str = OUR_NUMBER
) -> dict[str, str]:
    """A status callback as Twilio posts it."""
    form = {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    if error:
        form["ErrorCode"] = error
    return form


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """HMAC-SHA1 of the URL followed by each form key and value, keys sorted; base64."""
    data = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Callback:
    url: str
    form: dict[str, str]
    status: int


class CallbackTwilio(TimedFakeTwilio):
    """A Twilio-compatible server that also sends signed status callbacks."""

    def __init__(self, *args: Any, deliver_to: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliver_to = deliver_to
        self.outcomes: dict[str, tuple[str, str]] = {}  # number -> (status, error code)
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._marks: list[threading.Event] = []

    def fail_delivery(self, number: str, status: str = "undelivered", code: str = "30003") -> None:
        self.outcomes[number] = (status, code)

    def start(self) -> CallbackTwilio:
        super().start()
        self._sender = threading.Thread(target=self._send_callbacks, name="twilio-callbacks")
        self._sender.start()
        return self

    def stop(self) -> None:
        if self._sender is not None:
            self._queue.put(None)
            self._sender.join()
            self._sender = None
        super().stop()

    @property
    def callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks)

    def wait_callbacks(self, timeout: float = 10.0) -> None:
        """Until every callback queued so far was posted."""
        done = threading.Event()
        with self._lock:
            self._marks.append(done)
        # The marker is handled in order, after everything queued before it.
        self._queue.put(("__mark__", {}))
        assert done.wait(timeout), "callbacks not delivered in time"

    def _create(self, form: dict[str, str]) -> Any:
        status, payload, headers = super()._create(form)
        callback = form.get("StatusCallback")
        if status == 201 and callback:
            to = form["To"]
            final, code = self.outcomes.get(to, ("delivered", ""))
            base = {
                "AccountSid": self.account_sid,
                "From": form["From"],
                "To": to,
                "MessageSid": payload["sid"],
                "SmsSid": payload["sid"],
                "ApiVersion": "2010-04-01",
            }
            self._queue.put((callback, {**base, "MessageStatus": "sent", "SmsStatus": "sent"}))
            last = {**base, "MessageStatus": final, "SmsStatus": final}
            if code:
                last["ErrorCode"] = code
            self._queue.put((callback, last))
        return status, payload, headers

    def _send_callbacks(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                url, form = item
                if url == "__mark__":
                    with self._lock:
                        mark = self._marks.pop(0)
                    mark.set()
                    continue
                target = url
                if self.deliver_to is not None:
                    public, local = urlsplit(url), urlsplit(self.deliver_to)
                    target = urlunsplit((local.scheme, local.netloc, public.path, public.query, ""))
                signature = twilio_signature(self.auth_token, url, form)
                try:
                    response = client.post(
                        target, data=form, headers={"X-Twilio-Signature": signature}
                    )
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                with self._lock:
                    self._callbacks.append(Callback(url, form, code))
