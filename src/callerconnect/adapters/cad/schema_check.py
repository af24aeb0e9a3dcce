"""Whether a native event meets the contract's JSON Schema: cheap, and answering exactly
as the reference validator does.

The reference is ``jsonschema``'s Draft 2020-12 validator. Its verdict is the contract,
and its errors name the field and the rule of a 422 answer (``native._describe``). It
walks the schema in Python, about a quarter of the batched intake's CPU per event
(docs/scaling.md). ``jsonschema_rs`` (compiled, Rust) answers the same question some
thirty times cheaper, so:

* the compiled validator may say "valid" on its own, for an event it can judge;
* when it says "invalid", or cannot judge the event, the reference runs and gives the
  error list exactly as before. A refused event is rare; its cost does not matter.

Where the two could answer differently, and what keeps them equal here
(``tests/unit/test_schema_check.py`` holds them to it, with generated events):

* **Python types that are not JSON.** ``jsonschema_rs`` reads ``Decimal("3")`` as the
  integer 3, where the reference says "not an integer"; it refuses ``str`` subclasses,
  ``Fraction``, read-only mappings. The compiled verdict is used only when every value
  the schema declares (:func:`_declared_positions`) is of a type ``json.loads`` makes,
  and every integer there fits 64 bits (Rust's numbers; a bigger one is out of every
  bound of this schema anyway, but the reference says so in its own words).
  Undeclared properties are never looked into by either (``additionalProperties: true``).
* **Strings Rust cannot hold**: half of a UTF-16 surrogate pair (JSON can escape one,
  ``"\\ud800"``). ``jsonschema_rs`` raises on such a string wherever it must read it
  (a pattern, the ``type`` enum, a key); any exception means "cannot judge".
* **``format``**: the reference checks none (it has no FormatChecker; ``occurred_at`` is
  parsed strictly by ``native.parse_rfc3339`` afterwards), so neither does the compiled
  one (``validate_formats=False``; Draft 2020-12's default too, said here on purpose).
* **Regular expressions** (``pattern``; Rust's ``regex`` dialect, not Python's ``re``).
  The schema's patterns use only what both read alike: character classes of literal
  characters and ranges, ``*``, ``+``, ``?``, ``|``, ``(?:...)``, ``.``, ``^``, ``$``.
  No ``\\d``/``\\w``/``\\s``/``\\b`` (ASCII in one, Unicode in the other), no lookaround
  (Rust has none), no ``[`` inside a class nor ``&&``/``--``/``~~`` (set operations in
  Rust). ``$`` is the end of the text in Rust but also the place before a final ``\\n``
  in Python: every ``$`` here follows ``[<white space>]*``, which holds ``\\n``, so a
  final newline is taken by the class in either and both match the same strings. The
  ``\\udb40\\udc00-\\udb40\\udc7f`` range (tag characters) is a JSON-escaped surrogate
  pair that ``json.loads`` joins into U+E0000–U+E007F, an ordinary range in both. A test
  refuses a pattern that leaves this list (``test_schema_patterns_use_shared_syntax``).
* **Keywords that reach values by other routes** than ``properties`` (``items``,
  ``patternProperties``, ``$ref``...) would put values where the type check above does
  not look: a schema with one gets no compiled validator (:func:`_compiled`), only the
  reference, and a test fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from callerconnect.adapters.cad.event_fields import event_schema

__all__ = ["compiled_verdict", "reference_errors", "schema_errors"]

#: A tree of the properties the schema declares: name → the properties declared below it.
Positions = Mapping[str, "Positions"]

# Keywords that apply a schema at the same place of the event as their own.
_IN_PLACE = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("if", "then", "else", "not")
# Keywords that apply a schema somewhere other than a declared property: with any of
# them, :func:`_declared_positions` would not see every value the schema judges.
_ELSEWHERE = frozenset(
    {
        "items",
        "prefixItems",
        "contains",
        "patternProperties",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentSchemas",
        "$ref",
        "$dynamicRef",
        "$defs",
    }
)

# The types ``json.loads`` makes, exactly (no subclasses: ``bool`` is listed on its own).
_JSON_TYPES = frozenset({str, int, float, bool, type(None), dict, list})
_SMALLEST_INT, _LARGEST_INT = -(2**63), 2**64 - 1  # i64's least, u64's greatest


@cache
def _reference() -> Draft202012Validator:
    return Draft202012Validator(event_schema())


def _declared_positions(schema: Any) -> dict[str, Any] | None:
    """The properties ``schema`` declares, as a tree, or None when it applies a schema
    to values by another route (see :data:`_ELSEWHERE`)."""
    tree: dict[str, Any] = {}

    def visit(node: Any, at: dict[str, Any]) -> bool:
        if not isinstance(node, dict):
            return True  # a boolean schema
        if _ELSEWHERE.intersection(node):
            return False
        if node.get("additionalProperties", True) is not True:
            return False
        for name, below in node.get("properties", {}).items():
            if not visit(below, at.setdefault(name, {})):
                return False
        return all(visit(sub, at) for key in _IN_PLACE for sub in node.get(key, ())) and all(
            visit(node[key], at) for key in _IN_PLACE_ONE if key in node
        )

    return tree if visit(schema, tree) else None


@cache
def _compiled() -> tuple[jsonschema_rs.Draft202012Validator, dict[str, Any]] | None:
    """The compiled validator and the positions whose types it must be shown, or None
    when the schema is beyond what :func:`compiled_verdict` can vouch for."""
    schema = event_schema()
    positions = _declared_positions(schema)
    if positions is None:
        return None
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True)
    return validator, positions


def _json_typed(event: dict[str, Any], positions: dict[str, Any]) -> bool:
    """Whether every value at a declared position is of a type ``json.loads`` makes and
    every integer there fits 64 bits: the values both validators read alike."""
    for name, below in positions.items():
        value: Any = event.get(name)
        kind = type(value)
        if kind is dict:
            if below and not _json_typed(value, below):
                return False
        elif kind is int:
            if not _SMALLEST_INT <= value <= _LARGEST_INT:
                return False
        elif kind not in _JSON_TYPES:
            return False
    return True


def compiled_verdict(event: dict[str, Any]) -> bool | None:
    """The compiled validator's verdict on ``event`` (a dict), or None where it cannot
    judge it as the reference would."""
    compiled = _compiled()
    if compiled is None:
        return None
    validator, positions = compiled
    if type(event) is not dict or not _json_typed(event, positions):
        return None
    try:
        return validator.is_valid(event)
    except Exception:  # whatever it could not read, the reference judges
        return None


def reference_errors(event: Any) -> list[ValidationError]:
    """The reference validator's errors, in the order the 422 picks from (by path)."""
    return sorted(_reference().iter_errors(event), key=lambda e: list(e.absolute_path))


def schema_errors(event: dict[str, Any]) -> list[ValidationError]:
    """The reference's errors for ``event``: none without asking it when the compiled
    validator finds the event valid."""
    if compiled_verdict(event) is True:
        return []
    return reference_errors(event)
