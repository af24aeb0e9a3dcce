"""Twilio's webhooks (contract section 4): status callbacks and inbound texts.

``POST {public_base_url}/webhooks/twilio/status`` and ``.../webhooks/twilio/inbound``.
Each request must carry a valid ``X-Twilio-Signature``: HMAC-SHA1, keyed with the
account's auth token, over the full URL Twilio requested — ``public_base_url`` plus the
path and query *as configured*, since behind a proxy this server sees another host — and
the sorted form fields. It is checked with the official ``twilio`` library's
``RequestValidator``. A missing or bad signature is ``403`` and nothing is read further
or changed. A signed form that is not in a shape Twilio sends (web/twilio_fields.py: a
field moved, missing or repeated) is ``400`` and changes nothing either. Both endpoints
answer ``404`` when no Twilio auth token is configured.

* status: forward-only (service/receipts.py); a callback for an unknown ``MessageSid`` is
  ``200`` and changes no text (it waits a day in case the id is being recorded right
  now); the ``ref`` query parameter that the provider put in ``StatusCallback`` lets a
  callback find a text whose send answer was lost.
* inbound: stored and handled (service/inbound.py), answered with an empty TwiML
  ``<Response/>``. Replies are never put in the TwiML: they go through the outbox, which
  rate-limits them, re-checks opt-outs right before sending and records their delivery.

Twilio retries a webhook that fails; both handlers are idempotent (the status moves
forward only; an inbound ``MessageSid`` is stored once).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator

from callerconnect.adapters.sms.twilio import TwilioPayloadError, parse_inbound, parse_status
from callerconnect.bootstrap import Application
from callerconnect.logs import log_event
from callerconnect.service.receipts import Receipts
from callerconnect.web.intake import error_response
from callerconnect.web.openapi import error_answer, form_body, media_answer
from callerconnect.web.twilio_fields import (
    INBOUND_REQUIRED,
    REF_MAX,
    STATUS_REQUIRED,
    form_problem,
    form_schema,
)

log = logging.getLogger("callerconnect.webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SIGNATURE_HEADER = "X-Twilio-Signature"
#: Twilio's form posts are small; anything bigger is not Twilio.
MAX_BODY = 64 * 1024

# --- what the routes declare in the OpenAPI document -------------------------------------

_SIGNATURE = {
    "name": SIGNATURE_HEADER,
    "in": "header",
    "required": True,
    "description": "HMAC-SHA1 of the public URL and the sorted form, keyed with the "
    "auth token (Twilio's documented algorithm)",
    "schema": {"type": "string"},
}
_REF = {
    "name": "ref",
    "in": "query",
    "required": False,
    "description": "the reference put in StatusCallback when the text was sent",
    "schema": {"type": "string", "maxLength": REF_MAX, "pattern": "^[^\\u0000]*$"},
}
_REFUSALS: dict[int | str, dict[str, object]] = {
    400: error_answer("Signed, but a field Twilio always sends is missing or wrong"),
    403: error_answer("Missing or invalid X-Twilio-Signature; nothing changed"),
    404: error_answer("Twilio is not configured on this deployment"),
    413: error_answer("The request body is over this endpoint's limit; nothing was read"),
}
_STATUS_FORM = form_schema(
    STATUS_REQUIRED,
    {
        "MessageSid": "the text's SID: SM or MM and 32 hex digits",
        "MessageStatus": "queued, sending, sent, delivered, undelivered, failed...",
        "ErrorCode": "Twilio's error code when the text failed",
    },
)
_INBOUND_FORM = form_schema(
    INBOUND_REQUIRED,
    {"From": "the sender: E.164, a short code or an alphanumeric id", "Body": "the text"},
)


def build_webhooks_router(app: Application) -> APIRouter:
    router = APIRouter(prefix="/webhooks/twilio", tags=["SMS webhooks"])
    # Each agency may have a Twilio account of its own: a request signed with any of
    # their tokens is Twilio's; the text's agency comes from its row or its ``To``.
    tokens = [app.settings.sms.twilio.auth_token] + [
        agency.sms.twilio.auth_token for agency in app.settings.agencies.values()
    ]
    validators = [
        RequestValidator(secret)
        for secret in dict.fromkeys(t.get_secret_value() for t in tokens if t is not None)
    ]
    base_url = app.settings.public_base_url
    # Twilio's callbacks are Twilio's whichever provider sends today (callbacks for texts
    # sent before a switch still arrive), so they get a Receipts of their own.
    receipts = Receipts(app.db, app.clock, "twilio", opt_out_codes=frozenset({"21610"}))

    async def verified_form(request: Request, required: tuple[str, ...]) -> FormData | Response:
        if not validators:
            return error_response(404, "not_found", "Twilio is not configured")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return error_response(413, "too_large", "request body too large")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        form = await request.form()
        url = base_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        # A file part cannot be signed (and would break the check): refused as unsigned.
        texts = all(isinstance(value, str) for value in form.values())
        signed = bool(signature) and texts
        if not signed or not any(v.validate(url, form, signature) for v in validators):
            await form.close()
            log_event(
                log,
                "webhook_rejected",
                level=logging.WARNING,
                path=request.url.path,
                reason="missing_signature" if not signature else "bad_signature",
            )
            return error_response(403, "forbidden", "missing or invalid X-Twilio-Signature")
        problem = form_problem(form.multi_items(), required, request.query_params.get("ref"))
        if problem is not None:
            await form.close()
            log_event(
                log,
                "webhook_rejected",
                level=logging.WARNING,
                path=request.url.path,
                reason="not_twilios_shape",
            )
            return error_response(400, "bad_request", problem)
        return form

    @router.post(
        "/status",
        summary="Status",
        description="Twilio's status callback; statuses only move forward.",
        response_class=Response,
        responses={200: {"description": "Recorded (or already known)"}, **_REFUSALS},
        openapi_extra={"parameters": [_SIGNATURE, _REF], **form_body(_STATUS_FORM)},
    )
    async def status(request: Request) -> Response:
        form = await verified_form(request, STATUS_REQUIRED)
        if isinstance(form, Response):
            return form
        try:
            report = parse_status({key: str(value) for key, value in form.items()})
        except TwilioPayloadError as error:
            return error_response(400, "bad_request", str(error))
        reference = request.query_params.get("ref") or None
        await run_in_threadpool(receipts.apply, report, reference=reference)
        return Response(status_code=200)

    @router.post(
        "/inbound",
        summary="Inbound",
        description="A text a caller sent to the sender number.",
        response_class=Response,
        responses={
            200: media_answer(
                "Stored; replies go through the outbox, never in the TwiML", "application/xml"
            ),
            **_REFUSALS,
        },
        openapi_extra={"parameters": [_SIGNATURE], **form_body(_INBOUND_FORM)},
    )
    async def inbound(request: Request) -> Response:
        form = await verified_form(request, INBOUND_REQUIRED)
        if isinstance(form, Response):
            return form
        try:
            message = parse_inbound({key: str(value) for key, value in form.items()})
        except TwilioPayloadError as error:
            return error_response(400, "bad_request", str(error))
        await run_in_threadpool(app.inbound.handle, message, "twilio")
        return Response(EMPTY_TWIML, media_type="application/xml")

    return router
