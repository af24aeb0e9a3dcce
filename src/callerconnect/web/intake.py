"""CAD intake over HTTP (contract sections 1 and 2).

Every request body that passes authentication is kept: accepted events in the event
store, anything unusable in the dead letters, so an operator can list and replay it.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from callerconnect.adapters.cad.eido import EidoError, events_from_eido
from callerconnect.adapters.cad.native import EventRejected
from callerconnect.bootstrap import Application
from callerconnect.service.intake import IntakeResult

# Kept verbatim up to this size when a body is refused for being too large.
_OVERSIZE_SAMPLE = 64 * 1024


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
    return JSONResponse(body, status_code=status, headers=headers)


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return "it cannot be decoded"


def build_intake_router(app: Application) -> APIRouter:
    router = APIRouter(prefix="/api/v1/cad", tags=["CAD intake"])
    keys = [k.get_secret_value().encode() for k in app.settings.intake.api_keys]
    limits = app.settings.intake

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        # Compare with every key in constant time, so timing tells nothing.
        return (
            any(hmac.compare_digest(token.strip().encode(), key) for key in keys) if keys else False
        )

    async def read_json(request: Request, source: str) -> Any | JSONResponse:
        if not authorized(request):
            return error_response(
                401,
                "unauthorized",
                "send Authorization: Bearer <intake key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return await _too_large(request, source, int(declared))
        raw = await request.body()
        if len(raw) > limits.max_body_bytes:
            return await _too_large(request, source, len(raw), raw)
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            rejected = EventRejected("(body)", "json", f"the body is not valid JSON: {_why(error)}")
            await run_in_threadpool(app.intake.dead_letter, text, source, rejected)
            return error_response(400, "malformed_json", rejected.message)

    async def _too_large(
        request: Request, source: str, size: int, raw: bytes | None = None
    ) -> JSONResponse:
        sample = raw[:_OVERSIZE_SAMPLE] if raw is not None else b""
        rejected = EventRejected(
            "(body)",
            "maxBytes",
            f"the body has {size} bytes; at most {limits.max_body_bytes} are accepted "
            "— split the batch",
        )
        await run_in_threadpool(
            app.intake.dead_letter, sample.decode("utf-8", errors="replace"), source, rejected
        )
        return error_response(
            413, "body_too_large", rejected.message, field="(body)", rule="maxBytes"
        )

    async def reject_whole(
        source: str, body: Any, rejected: EventRejected, status: int = 422
    ) -> JSONResponse:
        await run_in_threadpool(app.intake.dead_letter, json.dumps(body), source, rejected)
        return error_response(
            status, "schema_violation", rejected.message, field=rejected.field, rule=rejected.rule
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
        if isinstance(body, dict) and "events" in body and "event_id" not in body:
            events = body["events"]
            if not isinstance(events, list):
                return await reject_whole(
                    "native",
                    body,
                    EventRejected("events", "type", "events must be a list of event objects"),
                )
            if not events:
                return await reject_whole(
                    "native",
                    body,
                    EventRejected("events", "minItems", "events must hold at least one event"),
                )
            if len(events) > limits.max_batch:
                return await reject_whole(
                    "native",
                    body,
                    EventRejected(
                        "events",
                        "maxItems",
                        f"events holds {len(events)} events; "
                        f"at most {limits.max_batch} per request",
                    ),
                )
            results = await run_in_threadpool(app.intake.submit_many, events, "native")
            return JSONResponse({"results": [r.as_dict() for r in results]}, status_code=202)
        if not isinstance(body, dict):
            return await reject_whole(
                "native",
                body,
                EventRejected(
                    "(body)", "type", 'the body must be one event object or {"events": [...]}'
                ),
            )
        result: IntakeResult = await run_in_threadpool(app.intake.submit, body, "native")
        if result.status == "rejected":
            return error_response(
                422,
                "schema_violation",
                result.error or "rejected",
                field=result.field,
                rule=result.rule,
                results=[result.as_dict()],
            )
        return JSONResponse({"results": [result.as_dict()]}, status_code=202)

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
        try:
            events = events_from_eido(body)
        except EidoError as error:
            return await reject_whole("eido", body, EventRejected(error.field, "eido", str(error)))
        results = await run_in_threadpool(app.intake.submit_many, events, "eido")
        return JSONResponse({"results": [r.as_dict() for r in results]}, status_code=202)

    return router
