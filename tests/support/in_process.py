"""The web application answering HTTP without a socket: ``InProcessServer`` has the
interface of ``LiveServer`` (a context manager with a ``url``), and every request that
httpx sends to that url — ``httpx.get``, ``httpx.post``, ``httpx.Client`` — goes straight
to the ASGI application instead of through uvicorn and the loopback interface.

What a request meets is what uvicorn hands the application: one event loop (in a
background thread, so requests from several test threads run concurrently, and sync
routes run in the thread pool as under uvicorn), the lifespan run at start and end, the
client at 127.0.0.1, and uvicorn's proxy-headers middleware with its default trust
(``--forwarded-allow-ips`` 127.0.0.1). A request body arrives whole and the response is
read whole.

What it does not have is the socket: no HTTP/1.1 parsing, no chunked bodies, no hang-ups,
no slow clients, no ``serve`` guards. Tests of those keep ``LiveServer`` (the
``live_socket_server`` fixture), as do the fuzzing and the end-to-end tests.

Starting one costs a thread and an event loop (milliseconds) where uvicorn costs a bound
port, a server loop and its shutdown poll (about half a second on the shared machine).
"""

from __future__ import annotations

import itertools
import threading
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import anyio
import anyio.from_thread
import httpx
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

#: Where uvicorn's proxy-headers middleware trusts X-Forwarded-For by default.
UVICORN_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"
#: The peer address every in-process request comes from (uvicorn's would be 127.0.0.1
#: and the client's port).
CLIENT = ("127.0.0.1", 50000)

_numbers = itertools.count(1)
_servers: dict[str, InProcessServer] = {}
_servers_lock = threading.Lock()
_send_over_network = httpx.HTTPTransport.handle_request


def _route(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
    """``HTTPTransport.handle_request`` while an in-process server runs: its requests go to
    its application, every other request to the network as before."""
    server = _servers.get(request.url.host)
    if server is None:
        return _send_over_network(transport, request)
    return server.handle(request)


class InProcessServer:
    def __init__(self, asgi_app: Any) -> None:
        self.app = ProxyHeadersMiddleware(asgi_app, trusted_hosts=UVICORN_FORWARDED_ALLOW_IPS)
        self.host = f"callerconnect-{next(_numbers)}.in-process.test"
        self.url = f"http://{self.host}"
        self._state: dict[str, Any] = {}
        self._stack = ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._startup_failure = ""

    # --- start and stop -----------------------------------------------------------------

    def __enter__(self) -> InProcessServer:
        self._portal = portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        try:
            portal.call(self._make_lifespan_events)
            self._lifespan = portal.start_task_soon(self._run_lifespan)
            portal.call(self._started.wait)
            if self._startup_failure:
                raise RuntimeError(f"the application did not start: {self._startup_failure}")
        except BaseException:
            self._stack.close()
            raise
        with _servers_lock:
            if not _servers:
                httpx.HTTPTransport.handle_request = _route  # type: ignore[method-assign]
            _servers[self.host] = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _servers_lock:
            del _servers[self.host]
            if not _servers:
                httpx.HTTPTransport.handle_request = _send_over_network  # type: ignore[method-assign]
        try:
            assert self._portal is not None
            self._portal.call(self._shutdown.set)
            self._lifespan.result(timeout=10)
        finally:
            self._stack.close()

    async def _make_lifespan_events(self) -> None:
        self._started = anyio.Event()
        self._shutdown = anyio.Event()

    async def _run_lifespan(self) -> None:
        sent_startup = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_startup
            if not sent_startup:
                sent_startup = True
                return {"type": "lifespan.startup"}
            await self._shutdown.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.failed":
                self._startup_failure = message.get("message", "") or "startup failed"
            if message["type"].startswith("lifespan.startup"):
                self._started.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        try:
            await self.app(scope, receive, send)
        except Exception:
            # uvicorn's "auto" lifespan: an application without one just starts.
            pass
        finally:
            self._started.set()

    # --- requests -----------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert self._portal is not None
        status, headers, body = self._portal.call(self._serve, request, request.read())
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _serve(
        self, request: httpx.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?", 1)[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": CLIENT,
            "server": (url.host, url.port or 80),
            "state": self._state.copy(),
        }
        received = False
        answered = anyio.Event()
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    answered.set()

        try:
            await self.app(scope, receive, send)
        except Exception:
            # uvicorn logs the error and, if nothing was sent yet, answers a plain 500.
            if not start:
                return (
                    500,
                    [(b"content-type", b"text/plain; charset=utf-8")],
                    (b"Internal Server Error"),
                )
        finally:
            answered.set()
        if not start:
            raise RuntimeError("the application returned without answering")
        # As uvicorn: a HEAD answer has the headers of a GET and no body.
        content = b"" if request.method == "HEAD" else b"".join(chunks)
        return start["status"], list(start.get("headers", [])), content
