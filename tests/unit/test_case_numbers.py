"""The default case-number pattern (domain/case_numbers.py; second probe, finding 5):
what it lets a text quote can never change what the text is."""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import Leniency

from callerconnect import texts
from callerconnect.domain.case_numbers import (
    DEFAULT_CASE_NUMBER_PATTERN,
    matches_case_number_pattern,
)
from callerconnect.domain.sms_encoding import SmsText
from callerconnect.texts import TextKind, accepted_case_number, render_text

AGENCY = {"en": "Ottawa Police", "fr": "Police d'Ottawa"}
PLACEHOLDER = "MARK0CASE"  # quotable; the one number its own pattern allows
URL = re.compile(r"https?:|www\.|[A-Za-z0-9-]+\.[A-Za-z]{2,}|[0-9]+\.[0-9]+\.[0-9]+")
TEN_DIGITS = re.compile(r"[0-9]{10}")
NANP_WRITTEN = re.compile(
    r"(?<![0-9])(?:1[-/. ]?)?\(?[2-9][0-9]{2}\)?[-/. ]?[2-9][0-9]{2}[-/. ]?[0-9]{4}(?![0-9])"
)


def phone_like(text: str) -> list[str]:
    """Phone numbers in ``text``: ten digits in a row, a North American number written
    with or without separators, or anything libphonenumber reads as a number written
    the way numbers are written (what a phone offers to call)."""
    found = TEN_DIGITS.findall(text) + NANP_WRITTEN.findall(text)
    found += [
        match.raw_string
        for match in phonenumbers.PhoneNumberMatcher(text, "CA", leniency=Leniency.STRICT_GROUPING)
    ]
    return found


@cache
def _marked(kind: TextKind, language: str | None) -> tuple[SmsText, list[str]]:
    """The text with a placeholder where the case number goes, and its phone numbers."""
    marked = render_text(
        kind,
        language,
        agency_name=AGENCY,
        case_number=PLACEHOLDER,
        case_number_pattern=PLACEHOLDER,
    )
    return marked, phone_like(marked.body)


# Candidates: shapes close to case numbers (prefixes, digit groups, separators, spaces,
# phone numbers), plus arbitrary text; the default pattern decides which count.
_GROUP = st.one_of(st.integers(0, 99_999_999), st.integers(0, 99_999_999_999)).map(str)
_CLOSE = st.builds(
    lambda prefix, first, rest, tail: prefix + first + "".join(sep + g for sep, g in rest) + tail,
    st.sampled_from(["", "", "", "OPS", "GO-", "R", "CALL ", "ABCDE-", "+"]),
    _GROUP,
    st.lists(st.tuples(st.sampled_from("--//. "), _GROUP), max_size=4),
    st.sampled_from(["", "", "", " NOW", ".co", "\n"]),
)
_ANY = st.text(st.sampled_from("0123456789-/ .AZaz+()\n:@"), min_size=1, max_size=24)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.one_of(_CLOSE, _CLOSE, _CLOSE, _ANY, st.text(max_size=24)))
def test_what_the_default_pattern_accepts_renders_safely_in_every_text(candidate: str) -> None:
    case_number = accepted_case_number(candidate)
    assume(case_number is not None)
    assert case_number is not None
    assert not phone_like(case_number), case_number
    assert not URL.search(case_number)
    for language in ("en", "fr", None):
        for kind in (TextKind.confirmation, TextKind.delay_notice):
            text = render_text(kind, language, agency_name=AGENCY, case_number=case_number)
            marked, marked_phones = _marked(kind, language)
            # The case number is all that changes, where the placeholder was: no line
            # break, link or phone number of its own, and the text stays GSM-7.
            assert text.body == marked.body.replace(PLACEHOLDER, case_number)
            assert text.encoding == "GSM-7"
            assert phone_like(text.body) == marked_phones
            assert "\n" not in case_number and "\r" not in case_number


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(["", "OPS", "GO-", "R", "PR-"]),
    year=st.one_of(st.integers(0, 99).map(lambda y: f"{y:02d}"), st.integers(1990, 2099).map(str)),
    number=st.integers(0, 99_999_999),
    width=st.integers(1, 8),
)
def test_every_ordinary_agency_case_number_is_accepted(
    prefix: str, year: str, number: int, width: int
) -> None:
    """A two- or four-digit year, a dash, up to eight digits, with or without a prefix;
    except one written as a phone number (a year 61 and 555-0199 reads as one)."""
    digits = f"{number:0{width}d}"[-8:]
    case_number = f"{prefix}{year}-{digits}"
    assume(not NANP_WRITTEN.search(case_number))
    assert accepted_case_number(case_number) == case_number


@pytest.mark.parametrize(
    "case_number",
    ["24-123456", "2024-12345678", "OPS24-1234", "GO-2024-123456", "26-00001", "2026/000123"],
)
def test_the_agency_examples_match_the_default(case_number: str) -> None:
    assert matches_case_number_pattern(case_number, DEFAULT_CASE_NUMBER_PATTERN)


@pytest.mark.parametrize(
    "case_number",
    [
        "1 CALL 18885550199 NOW",
        "613-555-0199",
        "1-888-555-0199",
        "613/555/0199",
        "555-0199",
        "GO-613-555-0199",
        "613-5550199",
        "6135550199",
        "24-6135550199",
        "2024-1234-5678-9012-3",
    ],
)
def test_the_probe_and_phone_numbers_are_never_quoted(case_number: str) -> None:
    assert accepted_case_number(case_number) is None
    with pytest.raises(texts.UnquotableCaseNumber):
        render_text(TextKind.confirmation, "en", agency_name=AGENCY, case_number=case_number)
    delay = render_text(TextKind.delay_notice, None, agency_name=AGENCY, case_number=case_number)
    assert delay == render_text(TextKind.delay_notice, None, agency_name=AGENCY)
