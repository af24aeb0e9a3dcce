"""Request body limits, enforced while the body streams in.

A route that reads its body itself checks ``Content-Length`` first and counts what it
reads (``web/intake.py``, ``web/survey.py``), so it can answer in its own way (a dead
letter for the CAD, a page for a person). This middleware is the floor under all of
them, including routes that let a library read the body (Twilio's form posts) and
routes written later:

* it wraps ``receive``: a body that declares, or streams, more than its path's limit
  raises :class:`BodyTooLarge` (an ``HTTPException(413)``) from ``receive`` itself, so
  no more than the limit (plus one network chunk) is ever read into memory, chunked
  bodies included;
* a response that starts before the request's body was read to its end (any early
  refusal: 401, 403, 413...) carries ``Connection: close``. Without it the server
  would keep the connection and go on reading, and discarding, whatever the client
  still sends; with it uvicorn closes the connection once the answer is out, and stops
  reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The request body is over its path's limit; nothing more of it is read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limits: Sequence[tuple[str, int]], default: int) -> None:
        """``limits``: (path prefix, bytes), the longest matching prefix wins;
        ``default`` for every other path."""
        self.app = app
        self.limits = sorted(limits, key=lambda item: len(item[0]), reverse=True)
        self.default = default

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or (declared.strip() not in ("", "0"))
        too_large = declared.isdigit() and int(declared) > limit
        received = 0
        finished = not has_body

        async def limited_receive() -> Message:
            nonlocal received, finished
            if too_large:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    finished = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not finished:
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, limited_receive, closing_send)
