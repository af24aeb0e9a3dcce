"""The compiled schema check answers exactly as the reference validator does.

``adapters/cad/schema_check.py`` lets ``jsonschema_rs`` say "valid" on its own and asks
the reference (``jsonschema``) for everything else. These tests generate events — the
simulated feed's, built ones, and mutations of both (other types in each field, lengths
at the bounds, odd Unicode with lone surrogates, ``\\n`` at the end, Unicode digits, huge
integers, ``Decimal``, ``1.0`` for an integer, extra, missing and null keys) — and hold
the fast path to the reference: the compiled verdict, whenever it gives one, is the
reference's, and the errors (hence the 422 and the parsed fact) are the same.

``CALLERCONNECT_TEST_HYPOTHESIS_EXAMPLES`` sets the number of examples (default 300).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import ValidationError
from tests.unit.domain_strategies import EXAMPLES

from callerconnect.adapters.cad import native, schema_check
from callerconnect.adapters.cad.event_fields import EVENT_PATHS, event_schema, schema_at
from callerconnect.adapters.cad.native import EventRejected, parse_event
from callerconnect.adapters.cad.schema_check import (
    compiled_verdict,
    reference_errors,
    schema_errors,
)
from callerconnect.domain.facts import CallFact
from callerconnect.service.simulation import simulated_day
from callerconnect.texts import WHITE_SPACE

pytestmark = pytest.mark.database_blind

DIFFERENTIAL = settings(max_examples=EXAMPLES, deadline=None)

# --------------------------------------------------------------------------- inputs

SIMULATED = [e.payload for e in simulated_day(datetime(2026, 3, 1, tzinfo=UTC), calls=40, seed=3)]

# Characters where Python's ``re`` and Rust's ``regex`` or the two validators could part:
# white space of every kind (the ids' trimming), controls and invisible formatting, the
# Unicode dashes of case numbers, Unicode digits (``\d`` differs), tag characters (the
# schema's surrogate-pair range) and their neighbours, astral characters, a final ``\n``.
ODD_CHARACTERS = (
    WHITE_SPACE
    + "aZz09-/.#\x00\x01\x1f\x7f\x85\x9f\xad\u061c\u180e\u200b\u200f\u2060\u2066\ufeff\ufffa"
    + "\u2010\u2013\u2212\ufe58\uff0d\u0663\u0966\uff10\u00e9\u00df\u0130\ufffd"
    + "\U000e0000\U000e0001\U000e007f\U000e0080\U0001d7ce\U00010000"
)
LONE_SURROGATES = "\ud800\udbff\udc00\udfff"

odd_text = st.text(st.sampled_from(ODD_CHARACTERS), max_size=12)
odd_text_with_surrogates = st.text(st.sampled_from(ODD_CHARACTERS + LONE_SURROGATES), max_size=12)

BIG_INTEGERS = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400, -(10**30)]
integers = st.integers(-3, 1500) | st.sampled_from(BIG_INTEGERS) | st.integers()
floats = st.sampled_from([1.0, 3.0, 9.0, 9.5, -0.0, 0.0, 1440.0, 1440.5, 1e300]) | st.floats()
decimals = st.sampled_from([Decimal("3"), Decimal("3.0"), Decimal("0"), Decimal("NaN")])


class Text(str):
    """A ``str`` that is not exactly ``str`` (an ORM or a framework may hand one over)."""


scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    floats,
    decimals,
    odd_text_with_surrogates,
    odd_text.map(Text),
)
odd_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["code", "phone", "id", "x"]), inner, max_size=3)
        | st.tuples(inner)
    ),
    max_leaves=6,
)

# The declared fields, as key paths, with the bound of each string field.
FIELD_PATHS = [tuple(path.split(".")) for path in EVENT_PATHS.values()]


def lengths_at_bounds(path: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Strings one short of, at and one past each length bound of the field."""
    node = schema_at(".".join(path))
    sizes = {0, 1}
    for keyword in ("minLength", "maxLength"):
        if keyword in node:
            sizes |= {node[keyword] - 1, node[keyword], node[keyword] + 1}
    fill = st.sampled_from(["7", "a", "\U00010000", "\u0663", " ", "\ud800"])
    return st.tuples(st.sampled_from(sorted(s for s in sizes if s >= 0)), fill).map(
        lambda pair: pair[1] * pair[0]
    )


valid_events = st.sampled_from(SIMULATED) | st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["e-1", " e-2\n", "\u3000x\u3000", "E" * 128]),
        "incident_id": st.sampled_from(["I-1", "I-1 ", "SIM-260301-0001"]),
        "occurred_at": st.sampled_from(["2026-03-01T10:00:00Z", "not a time", ""]),
        "type": st.sampled_from(
            ["call.received", "call.updated", "unit.dispatched", "call.cleared", "call.merged"]
        ),
    },
    optional={
        "case_number": st.sampled_from(["26-10011", "26-10011\n", "A 1/2.3", "1.2", "X" * 32]),
        "priority": st.integers(1, 9) | st.sampled_from([1.0, 9.0]),
        "call_type": st.fixed_dictionaries(
            {"code": st.sampled_from(["THEFT", "C" * 32])},
            optional={"description": st.text(max_size=200)},
        ),
        "district": st.text(max_size=64),
        "caller": st.fixed_dictionaries(
            {},
            optional={
                "phone": st.sampled_from(["613-555-0142", "+16135550199", "x" * 32]),
                "language": st.sampled_from(["en", "fr-CA", "l" * 16]),
                "sms_opt_out": st.booleans(),
            },
        ),
        "in_progress": st.booleans(),
        "risk_flag": st.booleans(),
        "unit": st.fixed_dictionaries(
            {}, optional={"id": st.text(max_size=32), "eta_minutes": st.integers(0, 1440)}
        ),
        "merged_into": st.sampled_from(["I-2", "I-2\n"]),
        "extra": odd_values,
    },
)


def _put(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``event`` with ``value`` at ``path`` (intermediate objects made)."""
    copy = dict(event)
    head, *rest = path
    if not rest:
        copy[head] = value
        return copy
    below = copy.get(head)
    copy[head] = _put(below if isinstance(below, dict) else {}, tuple(rest), value)
    return copy


def _drop(event: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    copy = dict(event)
    head, *rest = path
    if not rest:
        copy.pop(head, None)
    elif isinstance(copy.get(head), dict):
        copy[head] = _drop(copy[head], tuple(rest))
    return copy


def values_for(path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Values for one field: of its own type at and past its bounds, of the types a
    careless CAD or a library could put there instead, and anything at all."""
    node = schema_at(".".join(path))
    kind = node.get("type")
    if kind == "integer":
        near: st.SearchStrategy[Any] = st.one_of(integers, floats, decimals, st.booleans())
    elif kind == "boolean":
        near = st.one_of(st.booleans(), st.sampled_from([0, 1, 1.0, Decimal("1")]))
    elif kind == "string":
        near = st.one_of(odd_text_with_surrogates, lengths_at_bounds(path), odd_text.map(Text))
    else:  # the enum of event types
        near = st.sampled_from([*node.get("enum", []), "call.received\n", "CALL.RECEIVED"])
    return st.one_of(near, st.none(), odd_values)


@st.composite
def edited_text(draw: st.DrawFn, value: str) -> str:
    """``value`` with one odd character put in, a final newline among them."""
    at = draw(st.integers(0, len(value)))
    inserted = draw(st.sampled_from(["\n", " \n", *ODD_CHARACTERS, *LONE_SURROGATES]))
    return value[:at] + inserted + value[at:]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one to three of its fields made odd."""
    event: dict[str, Any] = draw(valid_events)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(FIELD_PATHS))
        current: Any = event
        for name in path:
            current = current.get(name) if isinstance(current, dict) else None
        how = draw(st.sampled_from(["replace", "edit", "drop", "extra", "merged"]))
        if how == "replace":
            event = _put(event, path, draw(values_for(path)))
        elif how == "edit" and isinstance(current, str):
            event = _put(event, path, draw(edited_text(current)))
        elif how == "drop":
            event = _drop(event, path)
        elif how == "extra":
            key = draw(st.sampled_from(["extra", "\ud800", "caller.phone", "", 7]))
            event = {**event, key: draw(odd_values)}
        elif how == "merged":
            event = {**event, "type": "call.merged"}
    return event


any_event = valid_events | mutated_events()

# --------------------------------------------------------------------------- checks


def _described(errors: list[ValidationError]) -> list[tuple[Any, ...]]:
    return [
        (e.message, list(e.absolute_path), e.validator, list(e.absolute_schema_path))
        for e in errors
    ]


def _judged(check: Any, event: dict[str, Any]) -> list[tuple[Any, ...]] | str:
    """The errors ``check`` finds, or the name of the exception it raised: the reference
    itself fails on some values no JSON parser makes (``Decimal("NaN")`` against a
    bound), and the fast path must then fail alike, not answer in its place."""
    try:
        return _described(check(event))
    except Exception as failure:
        return type(failure).__name__


def _outcome(event: dict[str, Any]) -> CallFact | dict[str, str] | str:
    try:
        return parse_event(event)
    except EventRejected as refused:
        return refused.as_dict()
    except Exception as failure:  # as in _judged
        return type(failure).__name__


def _assert_judged_alike(event: dict[str, Any]) -> None:
    reference = _judged(reference_errors, event)
    verdict = compiled_verdict(event)
    if verdict is not None:
        assert verdict == (reference == []), reference
    assert _judged(schema_errors, event) == reference


@DIFFERENTIAL
@given(any_event)
def test_the_compiled_verdict_is_the_reference_verdict(event: dict[str, Any]) -> None:
    _assert_judged_alike(event)


# Each field on its own, so that every field meets its odd values often (a fifth of the
# examples each: there are nineteen).
@pytest.mark.parametrize("path", FIELD_PATHS, ids=".".join)
@settings(DIFFERENTIAL, max_examples=max(EXAMPLES // 5, 10))
@given(data=st.data())
def test_each_field_is_judged_alike_whatever_it_holds(
    path: tuple[str, ...], data: st.DataObject
) -> None:
    event = data.draw(valid_events)
    _assert_judged_alike(_put(event, path, data.draw(values_for(path))))


@DIFFERENTIAL
@given(any_event)
def test_parse_event_answers_as_with_the_reference_alone(event: dict[str, Any]) -> None:
    fast = _outcome(event)
    with mock.patch.object(native, "schema_errors", reference_errors):
        reference = _outcome(event)
    assert fast == reference


@pytest.mark.parametrize("event", SIMULATED[:50])
def test_the_simulated_feed_is_judged_by_the_compiled_validator(event: dict[str, Any]) -> None:
    # The point of the fast path: a real event never needs the reference.
    assert compiled_verdict(event) is True
    assert reference_errors(event) == []


# --------------------------------------------------------------------------- known gaps


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "incident_id": "I-1",
        "occurred_at": "2026-03-01T10:00:00Z",
        "type": "call.received",
        **fields,
    }


def _naive() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(event_schema(), validate_formats=False)


@pytest.mark.parametrize(
    "fields", [{"priority": Decimal("3")}, {"unit": {"eta_minutes": Decimal("10")}}]
)
def test_a_decimal_integer_is_refused_as_the_reference_refuses_it(fields: dict[str, Any]) -> None:
    event = _event(**fields)
    assert _naive().is_valid(event)  # the compiled validator alone would accept it
    assert compiled_verdict(event) is None
    assert [e.validator for e in schema_errors(event)] == ["type"]


@pytest.mark.parametrize(
    "event",
    [
        _event(event_id="e-\ud800"),
        _event(type="\udfff"),
        _event(**{"\ud800": 1}),
        _event(case_number="26-\udc00"),
        _event(event_id=Text("e-1")),
    ],
    ids=["surrogate-in-id", "surrogate-in-enum", "surrogate-key", "surrogate-case", "str-subclass"],
)
def test_what_the_compiled_validator_cannot_read_goes_to_the_reference(
    event: dict[str, Any],
) -> None:
    with pytest.raises(ValueError):
        _naive().is_valid(event)
    assert compiled_verdict(event) is None
    assert _described(schema_errors(event)) == _described(reference_errors(event))


def test_formats_are_not_checked_by_either() -> None:
    # The reference has no FormatChecker; native.parse_rfc3339 reads the time afterwards.
    event = _event(occurred_at="yesterday")
    assert compiled_verdict(event) is True
    assert reference_errors(event) == []


def test_an_integer_beyond_64_bits_is_left_to_the_reference() -> None:
    event = _event(priority=2**64)
    assert compiled_verdict(event) is None
    assert [e.validator for e in schema_errors(event)] == ["maximum"]


def test_a_float_holding_an_integer_is_an_integer_for_both() -> None:
    assert compiled_verdict(_event(priority=4.0)) is True
    assert reference_errors(_event(priority=4.0)) == []
    assert compiled_verdict(_event(priority=math.nan)) is False


# --------------------------------------------------------------------------- patterns


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


PATTERNS = sorted(set(_patterns(event_schema())))

# What Python's ``re`` and Rust's ``regex`` read differently (schema_check.py says how):
# character-class shorthands (ASCII in one, Unicode in the other), boundaries, lookaround
# and inline flags, and Rust's nested classes and set operations inside a class.
_DIALECT_GAPS = re.compile(r"\\[dDwWsSbBAzZ]|\(\?[^:]|&&|--|~~|\[[^\]]*(?<!\\)\[")


def test_the_schema_has_patterns_to_compare() -> None:
    assert len(PATTERNS) == 4


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p[:24])
def test_schema_patterns_use_shared_syntax(pattern: str) -> None:
    assert _DIALECT_GAPS.search(pattern) is None
    # Every "$" follows a run of white space that may take a final "\n" (Python's "$"
    # also matches just before one; Rust's only at the very end).
    white_space_run = f"[{WHITE_SPACE}]*$"
    assert pattern.count("$") == pattern.count(white_space_run)


@DIFFERENTIAL
@given(st.sampled_from(PATTERNS), odd_text)
def test_schema_patterns_match_alike_in_python_and_rust(pattern: str, text: str) -> None:
    compiled = jsonschema_rs.Draft202012Validator({"pattern": pattern})
    assert compiled.is_valid(text) == (re.search(pattern, text) is not None)


def test_the_contract_schema_gets_the_compiled_validator() -> None:
    assert schema_check._compiled() is not None


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"a": {"items": {"type": "integer"}}}},
        {"patternProperties": {"^x": {"type": "integer"}}},
        {"additionalProperties": {"type": "integer"}},
        {"allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {}}},
    ],
)
def test_a_schema_judging_values_beyond_declared_properties_gets_no_compiled_validator(
    schema: dict[str, Any],
) -> None:
    assert schema_check._declared_positions(schema) is None


def test_a_mapping_that_is_not_a_plain_dict_is_left_to_the_reference() -> None:
    class Event(dict[str, Any]):
        """A dict subclass may read its items its own way; only plain dicts are judged."""

    event = Event(_event(caller=OrderedDict(phone="613-555-0142")))
    assert compiled_verdict(event) is None
    assert compiled_verdict({**event}) is None  # the nested OrderedDict
    assert schema_errors(event) == reference_errors(event) == []
