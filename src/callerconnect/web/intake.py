"""CAD intake over HTTP (contract sections 1 and 2).

Every request body that passes authentication is kept: accepted events in the event
store, anything unusable in the dead letters, so an operator can list and replay it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callerconnect.bootstrap import Application
from callerconnect.service.envelopes import (
    MAX_JSON_DEPTH,
    Delivery,
    Envelopes,
    Refusal,
    parse_json,
)
from callerconnect.service.intake import Intake
from callerconnect.web.limits import BodyTooLarge
from callerconnect.web.openapi import error_answer, json_answer, json_body, ref
from callerconnect.web.request_groups import RequestGroups
from callerconnect.web.threads import Threads

__all__ = ["MAX_JSON_DEPTH", "build_intake_router", "error_response", "parse_json"]

# Kept verbatim up to this size when a body is refused for being too large.
_OVERSIZE_SAMPLE = 64 * 1024


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


def intake_key_id(key: bytes) -> str:
    """A short, public name for an intake key: the first 8 hex digits of its SHA-256
    (``printf %s "$KEY" | sha256sum | cut -c1-8``). Names a key without revealing it."""
    return hashlib.sha256(key).hexdigest()[:8]


#: ``Authorization: Bearer <intake key>``, read without refusing anything itself: a
#: request without a usable key gets the intake's own 401 (``read_body``).
INTAKE_KEY = HTTPBearer(
    scheme_name="intakeKey", description="one of intake.api_keys", auto_error=False
)
IntakeKey = Annotated[HTTPAuthorizationCredentials | None, Security(INTAKE_KEY)]

# What both intake routes may answer besides their own bodies.
_INTAKE_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: error_answer("The body is not JSON (or not UTF-8, or nested too deep)"),
    401: error_answer(
        "Missing or unknown intake key",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
}
_RESULTS = "IntakeResults"

#: Threads folding a process's CAD requests: a native group of each intake key at a
#: time (web/request_groups.py), and EIDO documents and refusals of oversized bodies
#: (those wait their turn in service/intake_groups.py). Work beyond them queues.
INTAKE_THREADS = 8


def build_intake_router(app: Application) -> APIRouter:
    router = APIRouter(prefix="/api/v1/cad", tags=["CAD intake"])
    limits = app.settings.intake
    threads = Threads(INTAKE_THREADS, "intake")
    # Native bodies fold in groups gathered on the event loop (web/request_groups.py).
    groups = RequestGroups(threads)

    def key_used(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
        """The id of the intake key the request carries, or None when it carries none.
        Sets ``request.state.intake``: the intake of the agency the key belongs to,
        which every event and dead letter of the request is filed under."""
        if credentials is None:
            return None
        key = credentials.credentials.encode()
        agency = app.agencies.by_key(key)  # compares every key in constant time
        if agency is None:
            return None
        request.state.intake = app.intake_for(agency)
        return intake_key_id(key)

    def intake_of(request: Request) -> Intake:
        intake: Intake = request.state.intake
        return intake

    def envelopes_of(request: Request) -> Envelopes:
        """The envelopes of the agency whose key posted the request."""
        return Envelopes(intake_of(request), max_batch=limits.max_batch)

    async def read_body(
        request: Request, credentials: HTTPAuthorizationCredentials | None, channel: str
    ) -> tuple[bytes, str] | JSONResponse:
        """The body's bytes and where they came from, or the answer to give instead. The
        source (the channel and the id of the key that posted it) is stored with every
        event and dead letter, so what a leaked key sent can be found."""
        key_id = key_used(request, credentials)
        if key_id is None:
            return error_response(
                401,
                "unauthorized",
                "send Authorization: Bearer <intake key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        source = f"{channel}:{key_id}"
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
        return bytes(raw), source

    async def _too_large(
        request: Request, source: str, size: int | None, raw: bytes | None = None
    ) -> JSONResponse:
        sample = raw[:_OVERSIZE_SAMPLE] if raw is not None else b""
        refusal = await threads.run(
            envelopes_of(request).too_large, sample, source, size, limits.max_body_bytes
        )
        return error_response(
            413, "body_too_large", refusal.rejected.message, field="(body)", rule="maxBytes"
        )

    def answer(delivery: Delivery) -> JSONResponse:
        refusal: Refusal | None = delivery.refusal
        if refusal is None:
            return EchoSafeJSONResponse(
                {"results": [r.as_dict() for r in delivery.results]}, status_code=202
            )
        rejected = refusal.rejected
        if refusal.kind == "malformed":
            return error_response(400, "malformed_json", rejected.message, rule=rejected.rule)
        if refusal.kind == "event":
            (result,) = delivery.results
            if result.rule == "conflict":
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
            return error_response(
                422,
                "schema_violation",
                result.error or "rejected",
                field=result.field,
                rule=result.rule,
                results=[result.as_dict()],
            )
        return error_response(
            422, "schema_violation", rejected.message, field=rejected.field, rule=rejected.rule
        )

    @router.post(
        "/events",
        status_code=202,
        summary='Submit one CAD event or a batch {"events": [...]}',
        description=(
            'One native CAD event, or a batch `{"events": [...]}`. Every payload is '
            "kept: accepted events in the event store, anything else in the dead letters."
        ),
        responses={
            202: json_answer("Each event's status, in request order", ref(_RESULTS)),
            **_INTAKE_REFUSALS,
            409: error_answer(
                "One event whose event_id was first used for another incident: kept, "
                "and the incident it names held"
            ),
            413: error_answer(
                "The body is over intake.max_body_bytes; split the batch (kept in part)"
            ),
            422: error_answer(
                "A schema violation, naming the field and the rule (an occurred_at "
                "ahead of the receipt included)"
            ),
        },
        openapi_extra=json_body({"oneOf": [ref("CadEvent"), ref("CadEventBatch")]}),
    )
    async def post_events(
        request: Request,
        credentials: IntakeKey,
    ) -> JSONResponse:
        body = await read_body(request, credentials, "native")
        if isinstance(body, JSONResponse):
            return body
        raw, source = body
        # The connection's address names the client: a group waits a moment for the
        # clients it just answered (web/request_groups.py).
        client = request.scope.get("client")
        return answer(await groups.receive(envelopes_of(request), raw, source, client))

    @router.post(
        "/eido",
        status_code=202,
        summary="Submit one NENA EIDO document (an incident snapshot)",
        responses={
            202: json_answer(
                "The events the snapshot implies, each with its status", ref(_RESULTS)
            ),
            **_INTAKE_REFUSALS,
            413: error_answer("The body is over intake.max_body_bytes"),
            422: error_answer("An element callerconnect cannot map, named by its path"),
        },
        openapi_extra=json_body(ref("EidoDocument")),
    )
    async def post_eido(
        request: Request,
        credentials: IntakeKey,
    ) -> JSONResponse:
        body = await read_body(request, credentials, "eido")
        if isinstance(body, JSONResponse):
            return body
        raw, source = body
        return answer(await threads.run(envelopes_of(request).receive, raw, source, "eido"))

    return router
