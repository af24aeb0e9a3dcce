"""Schemathesis against the application's own OpenAPI document, over real HTTP.

The document is read from ``GET /openapi.json`` of the application running under
uvicorn (``live_server``), and every operation in it is fuzzed: CAD intake (native and
EIDO), Twilio's webhooks, the survey pages, the landline feedback page, the stylesheet
and ``/healthz``. Each generated request must get an answer that is never a 5xx, has a
status code and media type the document declares for that operation, a body that
matches the declared schema, and the security headers.

To reach past the first door rather than only knock on it, about half of the requests
(hypothesis draws ``real``) are made with what a legitimate client holds:

* intake: the bearer key (the others carry schemathesis' own made-up credentials: 401);
* Twilio: every request is sent twice, first as generated (unsigned or with a made-up
  signature, which must be ``403``), then signed with the auth token as Twilio signs,
  which must get past the signature and then obey the contract;
* survey: the token of a real invitation and the form's CSRF token; the landline form:
  its cookie and CSRF token. The rate-limit rows are cleared between requests so the
  fuzzing is not stopped at the limit (the limits have their own tests).

Examples per operation: ``CALLERCONNECT_TEST_FUZZ_EXAMPLES`` (default 50), generated
deterministically (``derandomize``), so a failure reproduces run after run.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy import delete

from callerconnect.adapters.db.tables import WebRateHitRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.texts import accepted_case_number
from callerconnect.web import twilio_fields
from callerconnect.web.app import create_app
from callerconnect.web.intake_schemas import cad_event_schema
from callerconnect.web.survey_csrf import LANDLINE_COOKIE
from tests.conftest import TEST_INTAKE_KEY, make_settings
from tests.support.live_server import LiveServer
from tests.support.survey import csrf_of, invite
from tests.support.twilio_webhooks import twilio_signature

pytestmark = pytest.mark.slow  # bounded by CALLERCONNECT_TEST_FUZZ_EXAMPLES

EXAMPLES = int(os.environ.get("CALLERCONNECT_TEST_FUZZ_EXAMPLES", "50"))
PUBLIC = "https://callerconnect.example.org"
TWILIO_TOKEN = "fuzz-twilio-auth-token-0123456789abcdef"
TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {TEST_INTAKE_KEY}"}
APP_ENV = {
    "CALLERCONNECT_PUBLIC_BASE_URL": PUBLIC,
    "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": TWILIO_ACCOUNT,
    "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
}
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "permissions-policy",
    "strict-transport-security",  # public_base_url is https here
)


@pytest.fixture
def app(app_factory: Any, database_url: str) -> Application:
    return app_factory(database_url, **APP_ENV)


@pytest.fixture
def live_server(app: Application) -> Iterator[LiveServer]:
    with LiveServer(create_app(app)) as server:
        yield server


@dataclass
class Target:
    """The running application and what a legitimate client of it holds."""

    app: Application
    server: LiveServer
    tokens: list[str]
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    _next_token: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._next_token = itertools.cycle(self.tokens)

    def token(self) -> str:
        return next(self._next_token)

    def clear_rate_limits(self) -> None:
        with self.app.db.transaction() as session:
            session.execute(delete(WebRateHitRow))

    def counted(self, label: str, status: int) -> None:
        seen = self.statuses.setdefault(label, {})
        seen[status] = seen.get(status, 0) + 1


@pytest.fixture
def target(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: LiveServer,
) -> Iterator[Target]:
    tokens = [
        invite(app, clock, console, live_server.url, AUTH, incident=f"FUZZ-{n}")
        for n in range(1, 6)
    ]
    started = time.monotonic()
    fuzzed = Target(app, live_server, tokens)
    yield fuzzed
    # The figures (shown with pytest -s): requests and answers per operation.
    print(f"\nfuzzing took {time.monotonic() - started:.1f}s")
    for label, seen in sorted(fuzzed.statuses.items()):
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(seen.items()))
        print(f"  {label}: {sum(seen.values())} requests ({answers})")


def _document() -> dict[str, Any]:
    """The application's OpenAPI document, from an application built for the purpose
    (schemathesis needs it when the tests are collected, before any fixture runs); the
    test checks that the live server serves the same one."""
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/schema.db"
        application = build_application(make_settings(url, **APP_ENV))
        try:
            return create_app(application).openapi()
        finally:
            application.close()


CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        # The explicit examples of the document cannot be combined with ``real`` below;
        # the coverage and fuzzing phases run.
        "phases": {"examples": {"enabled": False}},
        "checks": {
            # 410 (a closed survey) and 413 (too long) are refusals too.
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "410", "413", "422", "429"]
            },
        },
    }
)
DOCUMENT = _document()
EVENT_SCHEMA = Draft202012Validator(cad_event_schema())
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def _signed_url(case: Any, base_url: str) -> str:
    """The URL as Twilio would have requested it: the public base URL, the path and the
    query exactly as this request sends them."""
    prepared = requests.Request(
        "POST", base_url + case.formatted_path, params=case.query or None
    ).prepare()
    sent = urlsplit(prepared.url or "")
    return PUBLIC + sent.path + (f"?{sent.query}" if sent.query else "")


def _prepare_survey(case: Any, target: Target, real: bool) -> None:
    target.clear_rate_limits()
    if not real:
        return
    path = case.operation.path
    if path.startswith("/s/{token}"):
        token = target.token()
        case.path_parameters["token"] = token
        if case.method.upper() == "POST" and isinstance(case.body, dict):
            page = httpx.get(f"{target.server.url}/s/{token}")
            if page.status_code == 200:
                case.body["csrf_token"] = csrf_of(page.text)
    elif path == "/feedback" and case.method.upper() == "POST" and isinstance(case.body, dict):
        page = httpx.get(f"{target.server.url}/feedback")
        case.cookies = {**(case.cookies or {}), LANDLINE_COOKIE: page.cookies[LANDLINE_COOKIE]}
        case.body["csrf_token"] = csrf_of(page.text)


def _agency_refuses_case_number(body: Any) -> bool:
    """Whether ``body`` is one event whose case number the agency's pattern (the default,
    in this application) refuses."""
    if not isinstance(body, dict) or not isinstance(body.get("case_number"), str):
        return False
    return accepted_case_number(body["case_number"]) is None


def _check_headers(response: Any) -> None:
    missing = [name for name in SECURITY_HEADERS if name not in response.headers]
    assert not missing, f"{response.request.method} {response.request.url}: no {missing}"


# One running application for all of an operation's examples, on purpose: state builds
# up (answered surveys, duplicate events) as it would in service.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@schema.given(real=st.booleans())
@schema.parametrize()
def test_every_endpoint_answers_within_its_contract(case: Any, real: bool, target: Target) -> None:
    base_url = target.server.url
    if not target.statuses:  # the document fuzzed is the one the server serves
        assert httpx.get(f"{base_url}/openapi.json").json() == DOCUMENT
    path = case.operation.path
    label = case.operation.label
    headers: dict[str, str] = {}
    excluded: list[Any] = []
    batch: list[Any] | None = None
    refused_case_number = False
    if path.startswith("/api/"):
        if real:
            headers = dict(AUTH)
        if path == "/api/v1/cad/events" and isinstance(case.body, dict) and "events" in case.body:
            # A batch is accepted whole and rejects its bad events one by one: checked
            # below, event by event, instead of as one request.
            excluded.append(negative_data_rejection)
            batch = case.body["events"] if isinstance(case.body["events"], list) else None
        elif path == "/api/v1/cad/events" and _agency_refuses_case_number(case.body):
            # The agency's case-number pattern is a setting, which the document states in
            # words: a case number the contract's schema allows may still be refused.
            # Checked below: such an event is never accepted.
            excluded.append(positive_data_acceptance)
            refused_case_number = True
        if path == "/api/v1/cad/eido":
            # An EIDO is read leniently (keys in any case, null as absent, one object or
            # a list): the document's description is what it needs, not all it refuses.
            excluded.append(negative_data_rejection)
    elif path.startswith("/webhooks/"):
        # On the wire a form is text: send what requests would, and sign exactly that.
        # The same for the query (Twilio signs it too): a generated nested value would be
        # sent in one form and signed in another.
        case.body = {
            str(k): str(v)
            for k, v in (case.body or {}).items()
            if v is not None and not isinstance(v, list | dict)
        }
        case.query = {
            str(k): str(v)
            for k, v in (case.query or {}).items()
            if v is not None and not isinstance(v, list | dict)
        } or None
        # The older names (SmsSid) carry the current ones' values, as Twilio sends them:
        # a rule between two fields that JSON Schema cannot state (its refusal has tests
        # of its own in test_webhooks.py).
        for older, current in twilio_fields.SAME_VALUE:
            if older in case.body and current in case.body:
                if case.body[older] != case.body[current]:
                    # A value the generator broke on purpose is now the current one's:
                    # the request is no longer the negative case schemathesis made it.
                    excluded.append(negative_data_rejection)
                case.body[older] = case.body[current]
        # As generated: no valid signature can come out of the generator.
        forged = case.call(base_url=base_url)
        target.counted(label + " (unsigned)", forged.status_code)
        _check_headers(forged)
        assert forged.status_code == 403, forged.text
        signature = twilio_signature(TWILIO_TOKEN, _signed_url(case, base_url), case.body)
        case.headers = {**(case.headers or {}), "X-Twilio-Signature": signature}
    else:
        _prepare_survey(case, target, real)
    response = case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=excluded)
    target.counted(label, response.status_code)
    _check_headers(response)
    assert response.status_code < 500, response.text
    if path.startswith("/webhooks/"):
        sent = response.request.headers.get("X-Twilio-Signature")
        assert sent != signature or response.status_code != 403, "a signed request was refused"
    if refused_case_number and real:
        assert response.status_code != 202, response.text
    if batch is not None and response.status_code == 202:
        results = response.json()["results"]
        assert len(results) == len(batch)
        for event, result in zip(batch, results, strict=True):
            if not EVENT_SCHEMA.is_valid(event):
                assert result["status"] == "rejected", (event, result)


def test_every_operation_is_described_by_us_not_left_to_fastapi() -> None:
    """A route added later without its own ``responses=`` would keep FastAPI's default (a
    bodiless ``200 Successful Response``) and be fuzzed as such: refused."""
    operations = [
        (path, method, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) == 22  # /metrics is Prometheus text, not in the document
    for path, method, operation in operations:
        answers = operation["responses"]
        assert all(a["description"] != "Successful Response" for a in answers.values()), path
        assert all(
            "content" in answer or status in ("200", "303", "304")
            for status, answer in answers.items()
        ), (path, method)
        if method == "post":
            assert operation["requestBody"]["required"], (path, method)
