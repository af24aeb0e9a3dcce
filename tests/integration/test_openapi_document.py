"""The OpenAPI document (``GET /openapi.json``) that FastAPI builds from the routes' own
declarations: a valid OpenAPI 3.1 document, every operation with every answer it had
when the document was written by hand beside the routes, and the CAD event's body taken
from the contract's JSON Schema rather than written again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from callerconnect.adapters.cad.event_fields import STORED_TEXT_FIELDS, event_schema
from callerconnect.bootstrap import build_application
from callerconnect.web.app import create_app
from tests.conftest import make_settings

Json = dict[str, Any]

#: Every operation and the status codes it declares, as the hand-written document of
#: web/openapi.py had them before the routes declared their own (nothing may be lost).
OPERATIONS: dict[tuple[str, str], set[str]] = {
    ("post", "/api/v1/cad/events"): {"202", "400", "401", "409", "413", "422"},
    ("post", "/api/v1/cad/eido"): {"202", "400", "401", "413", "422"},
    ("post", "/webhooks/twilio/status"): {"200", "400", "403", "404", "413"},
    ("post", "/webhooks/twilio/inbound"): {"200", "400", "403", "404", "413"},
    ("get", "/s/{token}"): {"200", "404", "409", "410", "429"},
    ("post", "/s/{token}"): {"200", "303", "403", "404", "409", "410", "413", "422", "429"},
    ("get", "/s/{token}/thanks"): {"200", "303", "404", "409", "410", "429"},
    ("get", "/feedback"): {"200", "404"},
    ("post", "/feedback"): {"200", "303", "400", "403", "404", "413", "422", "429"},
    ("get", "/feedback/thanks"): {"200"},
    ("get", "/feedback/{agency}"): {"200", "404"},
    ("post", "/feedback/{agency}"): {"200", "303", "403", "404", "413", "422", "429"},
    ("get", "/feedback/{agency}/thanks"): {"200", "404"},
    ("get", "/static/survey.css"): {"200"},
    ("get", "/open-data"): {"200", "304"},
    ("get", "/static/open-data.css"): {"200", "304"},
    ("get", "/open-data/{name}"): {"200", "304", "404"},
    ("get", "/open-data/{agency}/{name}"): {"200", "304", "404"},
    ("get", "/api/feed/dcat-us/1.1.json"): {"200", "304"},
    ("get", "/api/feed/dcat-ap/2.1.1.json"): {"200", "304"},
    ("get", "/healthz"): {"200", "503"},
    ("get", "/readyz"): {"200", "503"},
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Json]:
    """The document the application serves at ``/openapi.json`` (test_api_fuzz.py checks
    over HTTP that the served one is this one)."""
    directory: Path = tmp_path_factory.mktemp("openapi")
    application = build_application(make_settings(f"sqlite:///{directory}/openapi.db"))
    try:
        yield create_app(application).openapi()
    finally:
        application.close()


def _operations(document: Json) -> dict[tuple[str, str], Json]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _resolve(document: Json, node: Json) -> Json:
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_document_is_a_valid_openapi_3_1_document(document: Json) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises, naming the part, when it is not


def test_every_operation_declares_every_answer_it_had(document: Json) -> None:
    declared = {key: set(op["responses"]) for key, op in _operations(document).items()}
    assert declared == OPERATIONS


def test_no_answer_is_left_to_fastapis_defaults(document: Json) -> None:
    for (method, path), operation in _operations(document).items():
        for status, answer in operation["responses"].items():
            assert answer["description"] not in ("Successful Response", "Validation Error"), (
                method,
                path,
                status,
            )
    # A string parameter cannot fail FastAPI's validation: no 422 that never comes.
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_intake_operations_require_the_intake_key(document: Json) -> None:
    operations = _operations(document)
    for path in ("/api/v1/cad/events", "/api/v1/cad/eido"):
        assert operations[("post", path)]["security"] == [{"intakeKey": []}]
    scheme = document["components"]["securitySchemes"]["intakeKey"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": "one of intake.api_keys"}


def test_every_reference_resolves(document: Json) -> None:
    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    schemas = document["components"]["schemas"]
    for target in references(document):
        assert target.startswith("#/components/schemas/")
        assert target.rsplit("/", 1)[1] in schemas, target


def test_the_cad_event_body_is_the_contracts_json_schema(document: Json) -> None:
    operation = _operations(document)[("post", "/api/v1/cad/events")]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    single, batch = (_resolve(document, choice) for choice in body["oneOf"])
    assert _resolve(document, batch["properties"]["events"]["items"]) is single
    contract = event_schema()
    # The same fields, required the same way, each with the contract's own rules...
    assert single["required"] == contract["required"]
    assert single["properties"].keys() == contract["properties"].keys()
    assert single["allOf"] == contract["allOf"]
    for name in ("priority", "type", "caller", "in_progress", "risk_flag"):
        assert single["properties"][name] == contract["properties"][name], name
    eta = single["properties"]["unit"]["properties"]["eta_minutes"]
    assert eta == contract["properties"]["unit"]["properties"]["eta_minutes"]
    # ...and the intake's own rules added on the fields it stores in columns.
    for path in STORED_TEXT_FIELDS:
        field, expected = single, contract
        for name in path.split("."):
            field, expected = field["properties"][name], expected["properties"][name]
        assert field["pattern"] == "^[^\\u0000]*$"
        assert field["maxLength"] == expected["maxLength"]
