"""A real local HTTP server that speaks Twilio's Messages API (create) as documented.

It exists so the Twilio provider is tested over real sockets — auth header, form
encoding, timeouts, connection reuse — rather than against a mock that agrees with
whatever the code does. Behaviour follows Twilio's documentation:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth
  (AccountSid, AuthToken); wrong or missing credentials → ``401`` with code ``20003``.
* Form fields ``To`` (missing → ``21604``), ``From`` (missing → ``21603``), ``Body``
  (missing → ``21602``), optional ``StatusCallback`` (bad URL → ``21609``) and
  ``ValidityPeriod`` (whole seconds 1..36000, else ``21624``); a ``To`` that is not E.164
  → ``21211``; a body over 1,600 characters → ``21617``. Errors are Twilio's JSON
  ``{"code", "message", "more_info", "status"}`` and, like Twilio, echo the number.
* Success is ``201`` with the Message resource JSON (``sid`` ``SM`` + 32 hex,
  ``status`` ``queued``, RFC 2822 dates, string ``num_segments``).
* Read-only, for ``callerconnect sms check``: ``GET /2010-04-01/Accounts/{Sid}.json``
  (the Account resource: ``sid``, ``friendly_name``, ``status`` ``active`` /
  ``suspended`` / ``closed``, ``type``) and ``GET .../IncomingPhoneNumbers.json`` with an
  optional ``PhoneNumber`` filter (a page ``{"incoming_phone_numbers": [...], "page",
  "page_size", ...}`` of numbers with ``phone_number``, ``capabilities`` and ``sms_url``).

It can be told to misbehave for the next N requests or for a time window (HTTP 500,
HTTP 503 from a "load balancer" with an HTML body, HTTP 429 with code 20429, a slow
answer), and to refuse given numbers (21211, 21612, 21614, 21610).

Use it as a context manager (``with FakeTwilio() as fake:``) or through the
``fake_twilio`` fixture below. ``stop()`` closes every socket and joins every thread,
so it is safe under ``-W error`` (no ResourceWarning).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hmac
import json
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from callerconnect.domain.sms_encoding import segment_count

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeTwilio",
    "Fault",
    "RecordedMessage",
    "RecordedRequest",
    "fake_twilio",
]

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API_VERSION = "2010-04-01"

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)\.json$")
_NUMBERS_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/IncomingPhoneNumbers\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_MAX_BODY = 1600
_VALIDITY_RANGE = (1, 36_000)


class Fault(enum.Enum):
    """Ways the fake can misbehave instead of answering normally."""

    HTTP_500 = "http_500"  # Twilio's own 500, JSON body with code 20500
    HTTP_503 = "http_503"  # a load balancer's 503, HTML body, no Twilio code
    THROTTLE = "throttle"  # 429 Too Many Requests, code 20429, Retry-After: 1
    SLOW = "slow"  # answer normally, but only after a delay (longer than a client timeout)


# Per-number refusals the fake can be told about, with Twilio-like messages. Twilio
# echoes the number in some of them; so does the fake, to test that callers scrub it.
_NUMBER_ERRORS: dict[int, str] = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21612: (
        "The 'To' phone number: {to}, is not currently reachable using the 'From' "
        "phone number: {sender} via SMS."
    ),
    21614: "The 'To' number {to} is not a valid mobile number.",
    21610: "Attempt to send to unsubscribed recipient",
}


@dataclass(frozen=True)
class RecordedRequest:
    """Every request the fake received, whatever it answered."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    status: int


@dataclass(frozen=True)
class RecordedMessage:
    """A message the fake accepted (answered 201)."""

    sid: str
    to: str
    from_: str
    body: str
    form: dict[str, str]
    date_created: datetime


@dataclass
class _Window:
    fault: Fault
    until: float
    delay: float


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: list[RecordedMessage] = field(default_factory=list)
    next_faults: deque[tuple[Fault, float]] = field(default_factory=deque)
    windows: list[_Window] = field(default_factory=list)
    number_errors: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections so it can close them on stop.

    Handler threads are joined by ``server_close`` (``block_on_close``); a keep-alive
    connection idling in the client's pool would block that join forever, so ``stop``
    shuts those sockets down first.
    """

    daemon_threads = True
    block_on_close = True
    fake: FakeTwilio

    def __init__(self, address: tuple[str, int], fake: FakeTwilio) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup that can take
        # seconds on a sandboxed machine; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = _current_exception()
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client gave up (timeout) or went away: expected in fault tests
        if exc is not None:
            self.fake._record_error(exc)


def _current_exception() -> BaseException | None:
    # socketserver calls handle_error from inside its ``except`` block.
    return sys.exc_info()[1]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive like the real API, so connection reuse is exercised too.
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"
    # Backstop: an idle connection nobody closes does not pin a thread forever.
    timeout = 30
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
    # peer's delayed ACK adds ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the fake records requests instead

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def _not_allowed(self) -> None:
        self.server.fake._handle(self)

    do_GET = _not_allowed
    do_PUT = _not_allowed
    do_DELETE = _not_allowed


def _error_payload(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio:
    """A Twilio Messages API on ``127.0.0.1`` and a free port; see the module docstring.

    ``api_base`` is what to pass as the provider's ``api_base``. ``senders``, when given,
    are the only ``From`` values accepted (others get ``21606``, as for a number the
    account does not own). ``slow_delay`` is how long a :attr:`Fault.SLOW` answer waits.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        senders: Iterable[str] | None = None,
        slow_delay: float = 2.0,
        account_status: str = "active",
        incoming_numbers: dict[str, str] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.account_status = account_status
        #: The account's numbers (``+1...``) and each one's SMS webhook URL.
        self.incoming_numbers = dict(incoming_numbers or {})
        self.auth_token = auth_token
        self.senders = frozenset(senders) if senders is not None else None
        self.slow_delay = slow_delay
        self._state = _State()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeTwilio:
        if self._server is not None:
            raise RuntimeError("FakeTwilio already started")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-twilio",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a SLOW fault
        server.shutdown()  # stops serve_forever
        thread.join()
        server.close_connections()  # unblocks handlers waiting on idle keep-alive
        server.server_close()  # closes the listening socket, joins handler threads
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running")
        return self._server.server_port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def messages_url(self) -> str:
        return f"{self.api_base}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    # -- what happened -------------------------------------------------------------

    @property
    def messages(self) -> list[RecordedMessage]:
        """Messages accepted so far (201), oldest first."""
        with self._state.lock:
            return list(self._state.messages)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, accepted or not, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions inside the fake's handlers (a bug in the fake or a test)."""
        with self._state.lock:
            return list(self._state.errors)

    # -- misbehaviour --------------------------------------------------------------

    def fail_next(self, n: int, fault: Fault, *, delay: float | None = None) -> None:
        """Answer the next ``n`` requests with ``fault`` (queued after earlier calls)."""
        wait = self.slow_delay if delay is None else delay
        with self._state.lock:
            self._state.next_faults.extend((fault, wait) for _ in range(n))

    def fail_for(self, seconds: float, fault: Fault, *, delay: float | None = None) -> None:
        """Answer every request with ``fault`` for the next ``seconds`` of wall time."""
        wait = self.slow_delay if delay is None else delay
        with self._state.lock:
            self._state.windows.append(_Window(fault, time.monotonic() + seconds, wait))

    def reject_number(self, number: str, code: int = 21211) -> None:
        """Refuse every text to ``number`` with Twilio error ``code`` (HTTP 400)."""
        if code not in _NUMBER_ERRORS:
            raise ValueError(f"unsupported code {code}; one of {sorted(_NUMBER_ERRORS)}")
        with self._state.lock:
            self._state.number_errors[number] = code

    def opt_out(self, number: str) -> None:
        """``number`` replied STOP: Twilio answers 21610 for it from now on."""
        self.reject_number(number, 21610)

    def reset(self) -> None:
        """Forget recorded traffic and every configured misbehaviour."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.messages.clear()
            self._state.next_faults.clear()
            self._state.windows.clear()
            self._state.number_errors.clear()

    # -- request handling (runs on handler threads) ----------------------------------

    def _record_error(self, exc: BaseException) -> None:
        with self._state.lock:
            self._state.errors.append(exc)

    def _take_fault(self) -> tuple[Fault, float] | None:
        with self._state.lock:
            if self._state.next_faults:
                return self._state.next_faults.popleft()
            now = time.monotonic()
            self._state.windows = [w for w in self._state.windows if w.until > now]
            if self._state.windows:
                window = self._state.windows[0]
                return window.fault, window.delay
        return None

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        content_type = handler.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            # Twilio reads the first value of a repeated field; so does the fake.
            for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
                form.setdefault(key, value)
        path = urlsplit(handler.path).path
        status, payload, headers = self._respond_to(handler.command, path, handler, form)
        with self._state.lock:
            self._state.requests.append(
                RecordedRequest(
                    method=handler.command,
                    path=path,
                    headers={k.title(): v for k, v in handler.headers.items()},
                    form=form,
                    status=status,
                )
            )
        if status == 0:
            handler.close_connection = True  # stopped while slow: hang up, answer nothing
            return
        if isinstance(payload, bytes):
            body, kind = payload, "text/html"
        else:
            body, kind = json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def _respond_to(
        self, method: str, path: str, handler: _Handler, form: dict[str, str]
    ) -> tuple[int, dict[str, Any] | bytes, dict[str, str]]:
        fault = self._take_fault()
        if fault is not None:
            kind, delay = fault
            if kind is Fault.HTTP_500:
                return 500, _error_payload(20500, "An internal server error has occurred", 500), {}
            if kind is Fault.HTTP_503:
                html = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
                return 503, html, {}
            if kind is Fault.THROTTLE:
                return 429, _error_payload(20429, "Too Many Requests", 429), {"Retry-After": "1"}
            # SLOW: the request still goes through afterwards, like a real API that was
            # merely late — the client that timed out cannot know whether it was sent.
            if self._stopping.wait(delay):
                return 0, {}, {}

        if not self._authorized(handler.headers.get("Authorization", "")):
            return (
                401,
                _error_payload(20003, "Authentication Error - invalid username", 401),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if method == "GET":
            return self._read(path, urlsplit(handler.path).query)
        match = _MESSAGES_PATH.match(path)
        if match is None or match["sid"] != self.account_sid:
            message = f"The requested resource {path} was not found"
            return 404, _error_payload(20404, message, 404), {}
        if method != "POST":
            return 405, _error_payload(20004, "Method not allowed", 405), {}
        return self._create(form)

    def _read(self, path: str, query: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        account = _ACCOUNT_PATH.match(path)
        if account is not None and account["sid"] == self.account_sid:
            now = format_datetime(datetime.now(UTC), usegmt=False)
            return (
                200,
                {
                    "sid": self.account_sid,
                    "friendly_name": "callerconnect tests",
                    "status": self.account_status,
                    "type": "Full",
                    "owner_account_sid": self.account_sid,
                    "date_created": now,
                    "date_updated": now,
                    "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
                },
                {},
            )
        numbers = _NUMBERS_PATH.match(path)
        if numbers is not None and numbers["sid"] == self.account_sid:
            wanted = dict(parse_qsl(query)).get("PhoneNumber")
            listed = [
                {
                    "sid": "PN" + uuid.uuid5(uuid.NAMESPACE_URL, number).hex,
                    "account_sid": self.account_sid,
                    "phone_number": number,
                    "friendly_name": number,
                    "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
                    "sms_url": sms_url,
                    "sms_method": "POST",
                }
                for number, sms_url in sorted(self.incoming_numbers.items())
                if wanted is None or number == wanted
            ]
            return (
                200,
                {
                    "incoming_phone_numbers": listed,
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": max(len(listed) - 1, 0),
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": path,
                },
                {},
            )
        return 404, _error_payload(20404, f"The requested resource {path} was not found", 404), {}

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(
            password, self.auth_token
        )

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        def bad(code: int, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
            return 400, _error_payload(code, message, 400), {}

        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return bad(21604, "A 'To' phone number is required.")
        if not sender:
            return bad(21603, "A 'From' phone number is required.")
        if not body:
            return bad(21602, "Message body is required.")
        if not _E164.match(to):
            return bad(21211, f"The 'To' number {to} is not a valid phone number.")
        if self.senders is not None and sender not in self.senders:
            return bad(
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        if len(body) > _MAX_BODY:
            return bad(21617, "The concatenated message body exceeds the 1600 character limit.")
        callback = form.get("StatusCallback")
        if callback is not None:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return bad(21609, "The StatusCallback URL is not a valid URL.")
        validity = form.get("ValidityPeriod")
        if validity is not None:
            low, high = _VALIDITY_RANGE
            if not validity.isdigit() or not low <= int(validity) <= high:
                return bad(21624, "Validity period can only be set between 1 and 36000 seconds.")
        with self._state.lock:
            refusal = self._state.number_errors.get(to)
        if refusal is not None:
            return bad(refusal, _NUMBER_ERRORS[refusal].format(to=to, sender=sender))

        now = datetime.now(UTC).replace(microsecond=0)
        sid = "SM" + uuid.uuid4().hex
        with self._state.lock:
            self._state.messages.append(
                RecordedMessage(
                    sid=sid, to=to, from_=sender, body=body, form=dict(form), date_created=now
                )
            )
        created = format_datetime(now)  # RFC 2822, "+0000" like Twilio
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(segment_count(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        return 201, resource, {}


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running :class:`FakeTwilio` with the default credentials, stopped afterwards."""
    with FakeTwilio() as fake:
        yield fake
    assert not fake.errors, f"fake Twilio handler errors: {fake.errors!r}"
