"""One declaration of a call's fields in the native event: the contract's JSON Schema,
and the map from each of its properties to the fact field it becomes. A field added to
the schema or to ``CallFact`` without the other fails here, not in production."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from callerconnect.adapters.cad.event_fields import (
    COPIED,
    EVENT_PATHS,
    STORED_TEXT_FIELDS,
    bound,
    event_schema,
)
from callerconnect.adapters.cad.native import parse_event
from callerconnect.domain.facts import CallFact

# Set by the intake, never read from an event.
_NOT_FROM_THE_EVENT = {"phone_invalid", "hold"}


def _leaves(schema: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for name, sub in schema.get("properties", {}).items():
        path = prefix + name
        found |= _leaves(sub, path + ".") if "properties" in sub else {path}
    return found


def test_every_property_of_the_schema_becomes_a_fact_field() -> None:
    assert set(EVENT_PATHS.values()) == _leaves(event_schema())


def test_every_fact_field_comes_from_one_property_of_the_event() -> None:
    fact_fields = {field.name for field in fields(CallFact)} - _NOT_FROM_THE_EVENT
    assert set(EVENT_PATHS) == fact_fields


def test_stored_text_fields_are_the_schemas_strings_kept_as_sent() -> None:
    assert set(STORED_TEXT_FIELDS) == {
        "event_id",
        "incident_id",
        "case_number",
        "district",
        "merged_into",
        "call_type.code",
        "call_type.description",
        "unit.id",
        "disposition.code",
        "disposition.description",
    }


def test_bounds_are_the_schemas() -> None:
    assert bound("unit.eta_minutes", "maximum") == 1440
    assert bound("incident_id", "maxLength") == 128
    assert (bound("priority", "minimum"), bound("priority", "maximum")) == (1, 9)


def test_each_copied_field_reaches_the_fact_from_its_place_in_the_event() -> None:
    event = {
        "event_id": "e-1",
        "incident_id": "I-1",
        "occurred_at": "2026-02-10T09:03:40-05:00",
        "type": "unit.dispatched",
        "priority": 3,
        "call_type": {"code": "THEFT", "description": "Theft under"},
        "district": "D-2",
        "caller": {"sms_opt_out": True},
        "in_progress": False,
        "risk_flag": True,
        "unit": {"id": "2C31", "eta_minutes": 17},
        "disposition": {"code": "RPT", "description": "Report taken"},
    }
    fact = parse_event(event)
    expected = {
        "priority": 3,
        "call_type_code": "THEFT",
        "call_type_description": "Theft under",
        "district": "D-2",
        "sms_opt_out": True,
        "in_progress": False,
        "risk_flag": True,
        "unit_id": "2C31",
        "eta_minutes": 17,
        "disposition_code": "RPT",
        "disposition_description": "Report taken",
    }
    assert set(COPIED) == set(expected)
    assert {name: getattr(fact, name) for name in COPIED} == expected
