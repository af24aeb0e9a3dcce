"""CAD intake over HTTP (contract sections 1 and 2).

Every request body that passes authentication is kept: accepted events in the event
store, anything unusable in the dead letters, so an operator can list and replay it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from callerconnect.adapters.cad.eido import EidoError, events_from_eido, incident_ids
from callerconnect.adapters.cad.native import EventRejected
from callerconnect.bootstrap import Application
from callerconnect.service.holds import HELD_TIME_AHEAD, HELD_UNREADABLE
from callerconnect.service.intake import IntakeResult
from callerconnect.web.limits import BodyTooLarge


class EchoSafeJSONResponse(JSONResponse):
    """JSON whose text always encodes. An answer may echo what the client sent (an
    ``event_id``), and JSON can carry half of a surrogate pair (``"\\ud800"``), which is
    not a character and which UTF-8 cannot encode: it goes back as the same escape
    instead of failing the request."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", errors="backslashreplace")


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    rule: str | None = None,
    results: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if rule is not None:
        error["rule"] = rule
    body: dict[str, Any] = {"error": error}
    if results is not None:
        body["results"] = results
    return EchoSafeJSONResponse(body, status_code=status, headers=headers)


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return "it cannot be decoded"


#: Deepest nesting of arrays and objects accepted in a body. Events nest 4 deep in a
#: batch and EIDO documents about 5; the limit keeps recursive code (schema validation,
#: copying, re-encoding for the dead letters) far from Python's recursion limit.
MAX_JSON_DEPTH = 32


def _nesting_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes) -> Any:
    """A request body as JSON (RFC 8259: UTF-8, so anything else is refused rather than
    guessed at), or :class:`EventRejected` saying why not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EventRejected(
            "(body)", "encoding", f"the body is not UTF-8 (invalid byte at offset {error.start})"
        ) from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise EventRejected(
            "(body)", "json", f"the body is not valid JSON: {_why(error)}"
        ) from None
    if _nesting_exceeds(value, MAX_JSON_DEPTH):
        raise EventRejected(
            "(body)", "maxDepth", f"the body nests more than {MAX_JSON_DEPTH} levels deep"
        )
    return value


def intake_key_id(key: bytes) -> str:
    """A short, public name for an intake key: the first 8 hex digits of its SHA-256
    (``printf %s "$KEY" | sha256sum | cut -c1-8``). Names a key without revealing it."""
    return hashlib.sha256(key).hexdigest()[:8]


def build_intake_router(app: Application) -> APIRouter:
    router = APIRouter(prefix="/api/v1/cad", tags=["CAD intake"])
    keys = [k.get_secret_value().encode() for k in app.settings.intake.api_keys]
    limits = app.settings.intake

    def key_used(request: Request) -> str | None:
        """The id of the intake key the request carries, or None when it carries none."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        # Compare with every key in constant time, so timing tells nothing.
        matches = [hmac.compare_digest(token.strip().encode(), key) for key in keys]
        return next((intake_key_id(k) for k, hit in zip(keys, matches, strict=True) if hit), None)

    async def read_json(request: Request, channel: str) -> Any | JSONResponse:
        """The body as JSON, or the answer to give instead. Sets ``request.state.source``:
        the channel and the id of the key that posted it, stored with every event and
        dead letter, so what a leaked key sent can be found."""
        key_id = key_used(request)
        if key_id is None:
            return error_response(
                401,
                "unauthorized",
                "send Authorization: Bearer <intake key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        source = request.state.source = f"{channel}:{key_id}"
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return await _too_large(request, source, int(declared))
        # Read while counting: a chunked body has no Content-Length to check first, and
        # BodyLimitMiddleware stops reading at the limit (web/limits.py).
        raw = bytearray()
        try:
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > limits.max_body_bytes:
                    return await _too_large(request, source, None, bytes(raw))
        except BodyTooLarge:
            return await _too_large(request, source, None, bytes(raw))
        request.state.body = bytes(raw)
        try:
            return parse_json(request.state.body)
        except EventRejected as rejected:
            # The bytes as received: their length and hash are those the CAD can check.
            await run_in_threadpool(app.intake.dead_letter, request.state.body, source, rejected)
            return error_response(400, "malformed_json", rejected.message, rule=rejected.rule)

    async def _too_large(
        request: Request, source: str, size: int | None, raw: bytes | None = None
    ) -> JSONResponse:
        limit = limits.max_body_bytes
        rejected = EventRejected(
            "(body)",
            "maxBytes",
            f"the body has {size} bytes; at most {limit} are accepted — split the batch"
            if size is not None
            else f"the body has more than {limit} bytes, the most accepted — split the batch",
        )
        # Not read to its end: what was read (its first 64 KiB kept) and the declared size.
        await run_in_threadpool(
            partial(app.intake.dead_letter, size=size, whole=False), raw or b"", source, rejected
        )
        return error_response(
            413, "body_too_large", rejected.message, field="(body)", rule="maxBytes"
        )

    async def reject_whole(request: Request, rejected: EventRejected) -> JSONResponse:
        """A body refused whole: a dead letter of the bytes as received."""
        source, raw = request.state.source, request.state.body
        await run_in_threadpool(app.intake.dead_letter, raw, source, rejected)
        return error_response(
            422, "schema_violation", rejected.message, field=rejected.field, rule=rejected.rule
        )

    @router.post(
        "/events",
        status_code=202,
        summary='Submit one CAD event or a batch {"events": [...]}',
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def post_events(request: Request) -> JSONResponse:
        body = await read_json(request, "native")
        if isinstance(body, JSONResponse):
            return body
        source: str = request.state.source
        if isinstance(body, dict) and "events" in body and "event_id" not in body:
            events = body["events"]
            if not isinstance(events, list):
                return await reject_whole(
                    request,
                    EventRejected("events", "type", "events must be a list of event objects"),
                )
            if not events:
                return await reject_whole(
                    request,
                    EventRejected("events", "minItems", "events must hold at least one event"),
                )
            if len(events) > limits.max_batch:
                return await reject_whole(
                    request,
                    EventRejected(
                        "events",
                        "maxItems",
                        f"events holds {len(events)} events; "
                        f"at most {limits.max_batch} per request",
                    ),
                )
            results = await run_in_threadpool(app.intake.submit_many, events, source)
            return EchoSafeJSONResponse(
                {"results": [r.as_dict() for r in results]}, status_code=202
            )
        if not isinstance(body, dict):
            return await reject_whole(
                request,
                EventRejected(
                    "(body)", "type", 'the body must be one event object or {"events": [...]}'
                ),
            )
        result: IntakeResult = await run_in_threadpool(app.intake.submit, body, source)
        if result.status == "rejected" and result.rule == "conflict":
            # The id names an event of another incident (service/intake.py): not a
            # schema violation, and not to be sent again under the same id.
            return error_response(
                409,
                "event_id_conflict",
                result.error or "rejected",
                field=result.field,
                rule=result.rule,
                results=[result.as_dict()],
            )
        if result.status == "rejected":
            return error_response(
                422,
                "schema_violation",
                result.error or "rejected",
                field=result.field,
                rule=result.rule,
                results=[result.as_dict()],
            )
        return EchoSafeJSONResponse({"results": [result.as_dict()]}, status_code=202)

    @router.post(
        "/eido",
        status_code=202,
        summary="Submit one NENA EIDO document (an incident snapshot)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def post_eido(request: Request) -> JSONResponse:
        body = await read_json(request, "eido")
        if isinstance(body, JSONResponse):
            return body
        source: str = request.state.source
        try:
            events = events_from_eido(body, case_number_pattern=app.policy.case_number_pattern)
            # Refused whole, like any snapshot we cannot use: never half of it folded.
            app.intake.check_snapshot_times(events)
        except EidoError as error:
            answer = await reject_whole(request, EventRejected(error.field, "eido", str(error)))
            # Kept first, then: a snapshot we cannot read may hold a caution or a
            # reclassification, so the incidents it names are held (service/holds.py).
            await run_in_threadpool(app.intake.hold, incident_ids(body), HELD_UNREADABLE, source)
            return answer
        except EventRejected as ahead:
            answer = await reject_whole(request, ahead)
            await run_in_threadpool(app.intake.hold, incident_ids(body), HELD_TIME_AHEAD, source)
            return answer
        results = await run_in_threadpool(app.intake.submit_many, events, source)
        return EchoSafeJSONResponse({"results": [r.as_dict() for r in results]}, status_code=202)

    return router
