"""Native event parsing beyond the schema: strict RFC 3339 times, normalised ids and
case numbers that are safe to quote in a text (red-team findings)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from callerconnect.adapters.cad.native import (
    ID_PATTERN,
    ID_RULE,
    EventRejected,
    TimeFormatError,
    clean_id,
    parse_event,
    parse_rfc3339,
)
from callerconnect.texts import CASE_NUMBER_SCHEMA, WHITE_SPACE, quotable_case_number


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "incident_id": "I-1",
        "occurred_at": "2026-11-28T13:47:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": "26-10011",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": "613-555-0142", "language": "en"},
    }
    base.update(fields)
    return base


def rejected(payload: dict[str, Any]) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        parse_event(payload)
    return caught.value


# --- times ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param("2026-11-28T13:47:00+05", id="hour-offset"),
        pytest.param("2026-11-28T13:47:00+0500", id="basic-offset"),
        pytest.param("2026-W48-6T13:47:00Z", id="week-date"),
        pytest.param("20261128T134700Z", id="basic-format"),
        pytest.param("2026-11-28T13:47Z", id="no-seconds"),
        pytest.param("2026-11-28T13:47:00.Z", id="empty-fraction"),
        pytest.param("2026-11-28 13:47:00Z", id="space-for-T"),
        pytest.param("2026-11-28T13:47:00", id="no-offset"),
        pytest.param("2026-11-28", id="date-only"),
        pytest.param(" 2026-11-28T13:47:00Z", id="leading-space"),
        pytest.param("2026-11-28T13:47:00Z\n", id="trailing-newline"),
        pytest.param("２０２６-11-28T13:47:00Z", id="fullwidth-digits"),
        pytest.param("2026-11-28T13:47:00+24:00", id="offset-24h"),
        pytest.param("2026-11-28T13:47:00+05:60", id="offset-60min"),
        pytest.param("2026-02-30T13:47:00Z", id="february-30"),
        pytest.param("2026-11-28T24:00:00Z", id="hour-24"),
        pytest.param("9998-12-31T23:59:59-23:59", id="year-9999-in-utc"),
        pytest.param("1900-01-01T00:00:00+00:01", id="year-1899-in-utc"),
        pytest.param("9999-12-31T23:30:00-01:00", id="year-9999"),
        pytest.param("0001-01-01T00:30:00+01:00", id="year-1"),
    ],
)
def test_occurred_at_must_be_strict_rfc3339_within_the_years(moment: str) -> None:
    error = rejected(event(occurred_at=moment))

    assert (error.field, error.rule) == ("occurred_at", "format")
    assert error.message.startswith("occurred_at: ")
    assert moment.strip() not in error.message  # never echo the value


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (
            "2026-11-28T13:47:00-05:00",
            datetime(2026, 11, 28, 13, 47, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("2026-11-28t13:47:00z", datetime(2026, 11, 28, 13, 47, tzinfo=UTC)),
        ("2026-11-28T13:47:00.1234567Z", datetime(2026, 11, 28, 13, 47, 0, 123456, tzinfo=UTC)),
        ("2026-11-28T13:47:00-00:00", datetime(2026, 11, 28, 13, 47, tzinfo=UTC)),
        (
            "9998-12-31T23:59:59+23:59",
            datetime(9998, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=23, minutes=59))),
        ),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_keep_their_offset(moment: str, expected: datetime) -> None:
    parsed = parse_rfc3339(moment)

    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()
    assert parse_event(event(occurred_at=moment)).occurred_at == expected


def test_time_errors_say_why_without_the_value() -> None:
    with pytest.raises(TimeFormatError, match="RFC 3339") as caught:
        parse_rfc3339("6135550142")

    assert "6135550142" not in str(caught.value)


# --- ids --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "incident_id"])
@pytest.mark.parametrize("value", [" ", "\t\n", "\u00a0", "\u3000"])
def test_an_id_of_only_white_space_is_refused(field: str, value: str) -> None:
    error = rejected(event(**{field: value}))

    assert (error.field, error.rule) == (field, "pattern")
    assert "visible" in error.message


def test_merged_into_of_only_white_space_is_refused() -> None:
    error = rejected(event(type="call.merged", merged_into="  "))

    assert (error.field, error.rule) == ("merged_into", "pattern")


@pytest.mark.parametrize("field", ["event_id", "incident_id"])
def test_ids_are_trimmed_so_that_a_trailing_space_names_the_same_incident(field: str) -> None:
    fact = parse_event(event(**{field: "  ID-7 \t"}))

    assert getattr(fact, field) == "ID-7"


def test_merged_into_is_trimmed() -> None:
    fact = parse_event(event(type="call.merged", merged_into=" I-2 "))

    assert fact.merged_into == "I-2"


def test_inner_spaces_of_an_id_are_kept() -> None:
    assert parse_event(event(incident_id="I 26 1")).incident_id == "I 26 1"


@pytest.mark.parametrize("field", ["event_id", "incident_id", "merged_into"])
@pytest.mark.parametrize(
    "bad", ["\x01", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\ufeff", "\u2028"]
)
def test_ids_with_control_or_invisible_characters_are_refused(field: str, bad: str) -> None:
    fields: dict[str, Any] = {field: f"I-{bad}1"}
    if field == "merged_into":
        fields["type"] = "call.merged"

    error = rejected(event(**fields))

    assert (error.field, error.rule) == (field, "pattern")
    assert error.message == f"{field}: {ID_RULE}"


# --- case numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "case_number",
    [
        pytest.param("http://evil.co/x", id="url"),
        pytest.param("www.evil.co", id="www"),
        pytest.param("evil.co", id="bare-domain"),
        pytest.param("26.co", id="digits-dot-letters"),
        pytest.param("10.0.0.1", id="ip-address"),
        pytest.param("1\nReply YES to", id="newline"),
        pytest.param("26\r10011", id="carriage-return"),
        pytest.param("26-10011 \U0001f6a8", id="emoji"),
        pytest.param("26-1001é", id="accent"),
        pytest.param("２６-10011", id="fullwidth-digits"),
        pytest.param("26--10011", id="double-dash"),
        pytest.param("26  10011", id="double-space"),
        pytest.param("-26", id="leading-dash"),
        pytest.param("26.", id="trailing-dot"),
        pytest.param("CASE", id="no-digit"),
        pytest.param("26_10011", id="underscore"),
        pytest.param("26:10011", id="colon"),
        pytest.param("user@26", id="at-sign"),
        pytest.param(" ", id="blank"),
    ],
)
def test_a_case_number_that_cannot_be_quoted_safely_is_refused(case_number: str) -> None:
    error = rejected(event(case_number=case_number))

    assert (error.field, error.rule) == ("case_number", "pattern")
    if case_number.strip():
        assert case_number.strip() not in error.message


def test_a_case_number_longer_than_32_characters_is_refused() -> None:
    error = rejected(event(case_number="26-" + "1" * 30))

    assert (error.field, error.rule) == ("case_number", "maxLength")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("26-10011", "26-10011"),
        ("  26-10011 ", "26-10011"),
        ("26–10011", "26-10011"),  # en dash
        ("26—10011", "26-10011"),  # em dash
        ("26−10011", "26-10011"),  # minus sign
        ("2026/000123", "2026/000123"),
        ("24-123456", "24-123456"),
        ("2024-12345678", "2024-12345678"),
        ("OPS24-1234", "OPS24-1234"),
        ("GO-2024-123456", "GO-2024-123456"),
    ],
)
def test_a_quotable_case_number_is_kept_normalised(given: str, stored: str) -> None:
    assert parse_event(event(case_number=given)).case_number == stored


# An agency may configure a looser pattern; the quotable rule still bounds it.
LOOSE_PATTERN = r"[A-Za-z0-9 ./-]+"


@pytest.mark.parametrize(
    "given",
    ["OPS-2025-0000123456789-ABCDEFGHI", "R 26 123", "2026.01.123"],
)
def test_an_agency_pattern_can_allow_other_quotable_case_numbers(given: str) -> None:
    with pytest.raises(EventRejected):
        parse_event(event(case_number=given))
    fact = parse_event(event(case_number=given), case_number_pattern=LOOSE_PATTERN)
    assert fact.case_number == given


@pytest.mark.parametrize(
    "case_number",
    [
        pytest.param("1 CALL 18885550199 NOW", id="probe-instruction"),
        pytest.param("613-555-0199", id="phone-dashed"),
        pytest.param("1-888-555-0199", id="toll-free"),
        pytest.param("GO-613-555-0199", id="phone-behind-prefix"),
        pytest.param("613/555/0199", id="phone-slashed"),
        pytest.param("555-0199", id="local-number"),
        pytest.param("6135550199", id="ten-digits"),
        pytest.param("24-6135550199", id="ten-digit-run"),
        pytest.param("R 26 123", id="space"),
        pytest.param("2026.01.123", id="dot"),
        pytest.param("ABCDEF-24-1", id="long-prefix"),
        pytest.param("2024-1234-5678-9012-3", id="over-20"),
    ],
)
def test_a_case_number_outside_the_agency_pattern_is_refused_without_echoing_it(
    case_number: str,
) -> None:
    error = rejected(event(case_number=case_number))

    assert (error.field, error.rule) == ("case_number", "agency_pattern")
    assert "intake.case_number_pattern" in error.message
    assert case_number not in error.message


def test_a_nul_in_a_case_number_is_still_rule_characters() -> None:
    error = rejected(event(case_number="26\x0010011"))

    assert (error.field, error.rule) == ("case_number", "characters")


# --- the schema says what the code does -----------------------------------------------

SCHEMA = json.loads(
    files("callerconnect.adapters.cad").joinpath("cad-event.schema.json").read_text("utf-8")
)


def test_white_space_is_what_str_strip_removes() -> None:
    assert set(WHITE_SPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_the_schema_carries_the_id_and_case_number_rules() -> None:
    for field in ("event_id", "incident_id", "merged_into"):
        assert SCHEMA["properties"][field]["allOf"] == [
            {"pattern": ID_PATTERN, "description": ID_RULE}
        ]
    assert SCHEMA["properties"]["case_number"]["allOf"] == CASE_NUMBER_SCHEMA["allOf"]


_TRICKY = st.sampled_from(
    [
        *WHITE_SPACE,
        *"\x01\x7f\x85\u200b\ufeff\U000e0041",
        *"-/.–−aZ09 ",
        *"\U0001f6a8é:_",
    ]
)
_IDS = st.one_of(st.text(max_size=12), st.text(_TRICKY, max_size=12))


@settings(max_examples=500, deadline=None)
@given(_IDS)
def test_the_id_pattern_and_the_code_agree(value: str) -> None:
    validator = Draft202012Validator(SCHEMA["properties"]["incident_id"])

    assert validator.is_valid(value) == (clean_id(value) is not None and len(value) <= 128)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(_TRICKY, max_size=32),
        st.from_regex(r"[A-Za-z0-9]{1,6}(?:[-/. –][A-Za-z0-9]{1,6}){0,4}", fullmatch=True),
    )
)
def test_the_case_number_schema_and_the_code_agree(value: str) -> None:
    validator = Draft202012Validator(SCHEMA["properties"]["case_number"])

    assert validator.is_valid(value) == (quotable_case_number(value) is not None)
