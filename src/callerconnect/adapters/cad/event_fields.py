"""Where each field of a call is declared in the native event, and what is derived from it.

The contract's JSON Schema (``cad-event.schema.json``) is the one declaration of a
native event's fields, their types and bounds. From it and from :data:`EVENT_PATHS` (which
fact field each of its properties becomes) come: the fields the native parser copies as
they are (:data:`COPIED`), the text fields stored in columns of their own
(:data:`STORED_TEXT_FIELDS`), the bounds the EIDO adapter applies to the native events it
makes (:func:`bound`), and the CAD body of the OpenAPI document (web/intake_schemas.py).
``tests/unit/test_event_fields.py`` checks that every property of the schema and every
field of ``CallFact`` is in :data:`EVENT_PATHS`, so a field added to one is not forgotten
in the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "COPIED",
    "EVENT_PATHS",
    "STORED_TEXT_FIELDS",
    "at_path",
    "bound",
    "event_schema",
    "schema_at",
]


@cache
def _schema_text() -> str:
    return (
        resources.files("callerconnect.adapters.cad")
        .joinpath("cad-event.schema.json")
        .read_text(encoding="utf-8")
    )


def event_schema() -> dict[str, Any]:
    """The native event's JSON Schema, a fresh copy: the intake validates with it and the
    OpenAPI document publishes it."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


#: Each field of a fact (domain/facts.py ``CallFact``) ← its dotted path in a native event.
EVENT_PATHS: Mapping[str, str] = {
    "event_id": "event_id",
    "incident_id": "incident_id",
    "occurred_at": "occurred_at",
    "type": "type",
    "case_number": "case_number",
    "priority": "priority",
    "call_type_code": "call_type.code",
    "call_type_description": "call_type.description",
    "district": "district",
    "phone": "caller.phone",
    "language": "caller.language",
    "sms_opt_out": "caller.sms_opt_out",
    "in_progress": "in_progress",
    "risk_flag": "risk_flag",
    "unit_id": "unit.id",
    "eta_minutes": "unit.eta_minutes",
    "disposition_code": "disposition.code",
    "disposition_description": "disposition.description",
    "merged_into": "merged_into",
}

# Read their own way by the parser (adapters/cad/native.py): ids trimmed, the time
# parsed, the type an enum, the case number made quotable, the phone and the language
# normalised. The caller's phone and language are never stored as sent.
_READ_OWN_WAY = frozenset(
    {"event_id", "incident_id", "occurred_at", "type", "case_number", "phone", "language"}
    | {"merged_into"}
)
_NOT_STORED_AS_SENT = frozenset({"occurred_at", "phone", "language"})

#: The fact fields the parser copies as the event has them (the schema has checked them).
COPIED = tuple(name for name in EVENT_PATHS if name not in _READ_OWN_WAY)


def schema_at(path: str) -> dict[str, Any]:
    """The schema of the property at a dotted ``path`` of the native event."""
    node = event_schema()
    for name in path.split("."):
        node = node["properties"][name]
    return node


def bound(path: str, keyword: str) -> int:
    """One bound of a field (``maxLength``, ``maximum``, ...) as the schema declares it."""
    value = schema_at(path)[keyword]
    assert isinstance(value, int), (path, keyword)
    return value


#: The text fields that are stored in columns of their own (the payload as a whole is
#: kept encrypted, as escaped JSON, whatever it holds; the caller's phone and language
#: are stored normalized, or not at all).
STORED_TEXT_FIELDS = tuple(
    path
    for name, path in EVENT_PATHS.items()
    if schema_at(path).get("type") == "string" and name not in _NOT_STORED_AS_SENT
)


@cache
def _names(path: str) -> tuple[str, ...]:
    # The parser reads some twenty paths per event, always the same few: split each once.
    return tuple(path.split("."))


def at_path(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of an event, or None where the event has none."""
    value: Any = payload
    for name in _names(path):
        # ``type(...) is dict`` first: the events are plain dicts, and the check against
        # the ``Mapping`` ABC costs several times more.
        if type(value) is dict or isinstance(value, Mapping):
            value = value.get(name)
        else:
            return None
    return value
