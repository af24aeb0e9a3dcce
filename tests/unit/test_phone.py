"""Phone numbers: every common North American form becomes one E.164 string; masks leak nothing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerconnect.adapters.sms.phone import InvalidPhone, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("613-555-0142", "+16135550142"),
        ("+1 (613) 555-0199", "+16135550199"),
        ("6135550177", "+16135550177"),
        ("tel:+1-613-555-0142", "+16135550142"),
        ("TEL:+16135550142", "+16135550142"),
        ("(613) 555-0142", "+16135550142"),
        ("1-613-555-0142", "+16135550142"),
        ("1 613 555 0142", "+16135550142"),
        ("613.555.0142", "+16135550142"),
        ("  613 555 0142  ", "+16135550142"),
        ("+16135550142", "+16135550142"),
        ("(343) 803-6032", "+13438036032"),
        ("+33 1 42 68 53 00", "+33142685300"),
        ("011 33 1 42 68 53 00", "+33142685300"),
    ],
)
def test_common_forms_normalize_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


def test_national_number_is_read_in_the_default_region() -> None:
    # 020 7946 0958 is a UK drama number: national form only makes sense with a region.
    assert normalize_phone("020 7946 0958", default_region="GB") == "+442079460958"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "tel:",
        "not a number",
        "555-0142",  # seven digits: no area code
        "613-555-014",  # one digit short
        "+1 613 555 01422",  # one digit long
        "911",
        "1-800-FLOWERS",  # vanity letters: not a caller's phone
        "613-555-0142 ext 22",  # an extension reaches a switchboard, not the caller
        "613-555-0142 x22",
        "tel:+1-613-555-0142;ext=22",
        "+1 (111) 555-0142",  # area codes never start with 1
        "6" * 200,
    ],
)
def test_unusable_input_raises_invalid_phone(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_invalid_phone_is_a_value_error_so_callers_can_catch_either() -> None:
    with pytest.raises(ValueError):
        normalize_phone("12")


@pytest.mark.parametrize("raw", ["613-555-014", "+1 613 555 01422", "1-800-FLOWERS", "555-0142"])
def test_invalid_phone_message_and_traceback_never_carry_the_number(raw: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(raw)
    digits = re.sub(r"\D", "", raw)
    text = str(info.value)
    assert digits not in re.sub(r"\D", "", text)
    assert raw not in text
    # Tracebacks get logged: no chained library exception that could quote the input.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_non_text_input_is_invalid_phone() -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(6135550142)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+16135550142", "+1613***0142"),
        ("+13438036032", "+1343***6032"),
        ("+442079460958", "+44***0958"),
        ("+33142685300", "+33***5300"),
    ],
)
def test_mask_keeps_country_area_code_and_last_four(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@pytest.mark.parametrize(
    "odd",
    [
        "",
        "+",
        "+1613",
        "+1613555014",  # NANP number one digit short
        "+161355501423",  # NANP number one digit long
        "6135550142",  # not E.164: raw input must not be half-shown
        "613-555-0142",
        "tel:+16135550142",
        "+0123456789",
        "+44123",
        "hello",
        "+1613555O142",
    ],
)
def test_mask_of_anything_short_or_odd_is_all_stars(odd: str) -> None:
    assert mask_phone(odd) == "***"


def test_mask_of_non_text_is_all_stars() -> None:
    assert mask_phone(None) == "***"  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_mask_never_raises_and_never_shows_more_than_eight_digits(text: str) -> None:
    masked = mask_phone(text)
    assert masked == "***" or re.fullmatch(r"\+\d{1,4}\*\*\*\d{4}", masked)
    assert len(re.sub(r"\D", "", masked)) <= 8


@given(st.from_regex(r"\A\+1[2-9]\d{2}[2-9]\d{6}\Z"))
def test_mask_of_any_nanp_number_hides_the_exchange(e164: str) -> None:
    masked = mask_phone(e164)
    assert masked == f"{e164[:5]}***{e164[-4:]}"
