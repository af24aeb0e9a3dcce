"""The web application: CAD intake, health, and (with later work) webhooks and pages."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from callerconnect import __version__
from callerconnect.bootstrap import Application
from callerconnect.logs import log_event, mask_secrets
from callerconnect.service.survey import load_definition
from callerconnect.web import survey_forms, webhooks
from callerconnect.web.dashboard import install_dashboard
from callerconnect.web.intake import build_intake_router, error_response
from callerconnect.web.intake_schemas import INTAKE_SCHEMAS
from callerconnect.web.limits import BodyLimitMiddleware, BodyTooLarge
from callerconnect.web.metrics import metrics_registry, render
from callerconnect.web.openapi import install_openapi
from callerconnect.web.opendata import build_opendata_router
from callerconnect.web.probes import (
    HEALTH_ANSWERS,
    PROBE_SCHEMAS,
    READINESS_ANSWERS,
    expected_revision,
    readiness,
)
from callerconnect.web.request_log import RequestLogMiddleware
from callerconnect.web.security import SecurityHeadersMiddleware, security_headers
from callerconnect.web.survey import build_survey_router
from callerconnect.web.webhooks import build_webhooks_router

log = logging.getLogger("callerconnect.web")


def _without_opentelemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry hooks, off: nothing here sets OpenTelemetry up (the
    application has its own /metrics and logs), yet the hooks look the global providers
    up on every request, a sixth of a survey page's time in the event loop. Only newer
    FastAPI versions have them."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(application: Application) -> FastAPI:
    api = FastAPI(
        **_without_opentelemetry(),
        title="callerconnect",
        version=__version__,
        description="Texts people who call the police about less urgent matters.",
        # Swagger UI and ReDoc load scripts from a CDN, which the CSP (rightly) blocks:
        # no broken pages. The document itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
        # No "add a trailing slash" redirects: Starlette builds their Location from the
        # Host header, and one would carry a survey token in an uncacheable-unmarked 307.
        redirect_slashes=False,
    )
    api.state.application = application
    definition = load_definition()
    api.include_router(build_intake_router(application))
    api.include_router(build_survey_router(application, definition=definition))
    api.include_router(build_webhooks_router(application))
    api.include_router(build_opendata_router(application))
    install_dashboard(api, application)
    install_openapi(api, {**INTAKE_SCHEMAS, **PROBE_SCHEMAS})
    https = application.settings.public_base_url.startswith("https://")
    # Innermost first: the headers middleware also covers the limit's refusals.
    api.add_middleware(
        BodyLimitMiddleware,
        limits=[
            ("/api/v1/cad/", application.settings.intake.max_body_bytes),
            ("/webhooks/", webhooks.MAX_BODY),
            ("/s/", survey_forms.MAX_FORM_BYTES),
            ("/feedback", survey_forms.MAX_FORM_BYTES),
        ],
        default=64 * 1024,
    )
    api.add_middleware(SecurityHeadersMiddleware, https=https)
    api.add_middleware(RequestLogMiddleware)  # outermost: sees every answer, refusals too

    @api.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return error_response(
            413,
            "body_too_large",
            f"the request body is over {error.limit} bytes; nothing more was read",
        )

    @api.get("/healthz", tags=["operations"], summary="Healthz", responses=HEALTH_ANSWERS)
    async def healthz() -> JSONResponse:
        reachable = await run_in_threadpool(application.db.ping)
        if reachable:
            return JSONResponse({"status": "ok", "database": "ok", "version": __version__})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)

    head = expected_revision(application)
    registry = metrics_registry(application)

    @api.get("/readyz", tags=["operations"], summary="Readyz", responses=READINESS_ANSWERS)
    async def readyz() -> JSONResponse:
        ready, body = await run_in_threadpool(readiness, application, head)
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(render, registry)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @api.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, error: ClientDisconnect) -> Response:
        # The client hung up before its body was in: nobody to answer, nothing wrong here
        # (and anyone can do it, so it must not fill the log with errors).
        log_event(log, "client_disconnected", path=mask_secrets(request.url.path))
        return Response(status_code=400, headers=security_headers(https=https))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Never echo internals (they can carry personal data); the log has the trace.
        log.exception("action=request_failed path=%s", mask_secrets(request.url.path))
        return JSONResponse(
            {
                "error": {
                    "code": "internal",
                    "message": "internal error; the request can be retried",
                }
            },
            status_code=500,
            # This handler runs outside the middleware stack: add the headers here.
            headers=security_headers(https=https),
        )

    return api
