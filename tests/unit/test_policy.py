"""Eligibility, the call-type table, quiet hours and the re-check right before a send."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.domain_strategies import (
    CALL_TYPES,
    DEFAULT_QUIET_HOURS,
    EXCLUDED_CODES,
    POLICY,
    PROPERTY_SETTINGS,
    TZ,
    apply_all,
    at,
    bundled_call_type_rows,
    eligible_received,
    fact,
    local,
    make_policy,
)

from callerconnect.domain.calls import Call
from callerconnect.domain.facts import FactType
from callerconnect.domain.lifecycle import new_call
from callerconnect.domain.messages import TextKind
from callerconnect.domain.policy import (
    ELIGIBLE,
    CallTypeTableError,
    PhoneContext,
    QuietHours,
    SendCheck,
    check_before_send,
    eligibility,
    is_sticky,
    normalize_call_type_code,
    parse_call_types,
)

# --------------------------------------------------------------------------- call types

HEADER = "code,description_en,description_fr,category,textable\n"


def rows(text: str) -> list[dict[str, str | None]]:
    return list(csv.DictReader(io.StringIO(HEADER + text)))


def test_bundled_table_excludes_exactly_the_six_dangerous_categories() -> None:
    excluded = {ct.category for ct in CALL_TYPES.values() if not ct.textable}
    assert excluded == {
        "sexual_assault",
        "intimate_partner_violence",
        "abduction",
        "bomb_threat",
        "alarm",
        "demonstration",
    }
    assert set(EXCLUDED_CODES) == {"DOMESTIC", "IPV", "SEXASSLT", "ABDUCT", "BOMB", "ALARM", "DEMO"}


def test_bundled_table_keeps_both_descriptions_and_textable_types() -> None:
    theft = CALL_TYPES["THEFT"]
    assert theft.textable and theft.category == "property"
    assert theft.description_en == "Theft under $5000"
    assert theft.description_fr == "Vol de moins de 5 000 $"
    assert len(CALL_TYPES) == len(bundled_call_type_rows()) == 21


def test_call_type_codes_are_normalised_in_the_table_and_in_lookups() -> None:
    table = parse_call_types(rows(" theft ,T,V,property,YES\nbomb,B,A,bomb_threat, No \n"))
    assert set(table) == {"THEFT", "BOMB"}
    assert table["THEFT"].textable and not table["BOMB"].textable
    policy = make_policy(call_types=table)
    assert policy.call_type("  Theft") is table["THEFT"]
    assert policy.call_type("bomb") is table["BOMB"]
    assert policy.call_type("UNKNOWN") is None
    assert policy.call_type(None) is None
    assert normalize_call_type_code("  mvc ") == "MVC"


@pytest.mark.parametrize(
    ("csv_text", "line", "message"),
    [
        pytest.param(
            "THEFT,T,V,property,yes\nMVC,M,C,traffic,yes\nTHEFT,T2,V2,property,no\n",
            4,
            "'THEFT' appears twice",
            id="duplicate-code",
        ),
        pytest.param(
            "THEFT,T,V,property,yes\n theft ,T,V,property,yes\n",
            3,
            "'THEFT' appears twice",
            id="duplicate-code-after-normalising",
        ),
        pytest.param("THEFT,T,V,property,maybe\n", 2, "not 'maybe'", id="textable-maybe"),
        pytest.param("THEFT,T,V,property,true\n", 2, "not 'true'", id="textable-true"),
        pytest.param("THEFT,T,V,property,\n", 2, "yes or no", id="textable-empty"),
        pytest.param("THEFT,T,V,property\n", 2, "yes or no", id="textable-missing"),
        pytest.param("THEFT,T,V,,yes\n", 2, "empty category", id="empty-category"),
        pytest.param("THEFT,T,V,   ,no\n", 2, "empty category", id="blank-category"),
        pytest.param(",T,V,property,yes\n", 2, "empty code", id="empty-code"),
    ],
)
def test_unusable_call_type_table_is_refused_naming_the_line(
    csv_text: str, line: int, message: str
) -> None:
    with pytest.raises(CallTypeTableError) as caught:
        parse_call_types(rows(csv_text))
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"call-type table line {line}:")
    assert isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------- eligibility


def eligible_call(**changes: object) -> Call:
    call, _ = apply_all([eligible_received(at(10))])
    assert eligibility(call, POLICY) == ELIGIBLE
    return replace(call, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({}, ELIGIBLE, id="eligible"),
        pytest.param({"priority": 4}, ELIGIBLE, id="priority-4"),
        pytest.param({"priority": 1}, "ineligible:priority", id="priority-1"),
        pytest.param({"priority": 2}, "ineligible:priority", id="priority-2"),
        pytest.param({"priority": 5}, "ineligible:priority", id="priority-5"),
        pytest.param({"priority": None}, "ineligible:no_priority", id="no-priority"),
        pytest.param({"in_progress": True}, "ineligible:in_progress", id="in-progress"),
        pytest.param({"risk_flag": True}, "ineligible:risk_flag", id="risk-flag"),
        pytest.param({"call_type_code": None}, "ineligible:no_call_type", id="no-call-type"),
        pytest.param(
            {"call_type_code": "ROBBERYX"}, "ineligible:unknown_call_type", id="unknown-type"
        ),
        pytest.param({"caller_opted_out": True}, "ineligible:opted_out", id="opted-out"),
        pytest.param({"phone": None}, "ineligible:no_phone", id="no-phone"),
        pytest.param(
            {"phone": None, "phone_invalid": True}, "ineligible:invalid_phone", id="invalid-phone"
        ),
        pytest.param({"cancelled_at": at(11)}, "ineligible:cancelled", id="cancelled"),
        pytest.param({"merged_into": "I-9"}, "ineligible:merged", id="merged"),
        pytest.param({"blocked_reason": "excluded:alarm"}, "excluded:alarm", id="blocked"),
    ],
)
def test_eligibility_names_the_reason(changes: dict[str, object], reason: str) -> None:
    assert eligibility(eligible_call(**changes), POLICY) == reason


@pytest.mark.parametrize("code", EXCLUDED_CODES)
def test_excluded_call_type_is_never_eligible(code: str) -> None:
    category = CALL_TYPES[code].category
    assert eligibility(eligible_call(call_type_code=code), POLICY) == f"excluded:{category}"
    assert eligibility(eligible_call(call_type_code=code.lower()), POLICY) == f"excluded:{category}"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # Safety reasons are reported first, whatever else is missing.
        ({"risk_flag": True, "priority": 2, "phone": None}, "ineligible:risk_flag"),
        ({"in_progress": True, "call_type_code": "SEXASSLT"}, "ineligible:in_progress"),
        ({"call_type_code": "BOMB", "priority": None}, "excluded:bomb_threat"),
        ({"merged_into": "I-9", "cancelled_at": at(11), "risk_flag": True}, "ineligible:merged"),
        ({"cancelled_at": at(11), "risk_flag": True}, "ineligible:cancelled"),
    ],
)
def test_safety_reasons_win_over_missing_information(
    changes: dict[str, object], reason: str
) -> None:
    assert eligibility(eligible_call(**changes), POLICY) == reason


def test_textable_priorities_come_from_the_policy() -> None:
    policy = make_policy(priorities=frozenset({2}))
    assert eligibility(eligible_call(priority=2), policy) == ELIGIBLE
    assert eligibility(eligible_call(priority=3), policy) == "ineligible:priority"


@pytest.mark.parametrize(
    ("reason", "sticky"),
    [
        ("excluded:sexual_assault", True),
        ("excluded:anything_new", True),
        ("ineligible:merged", True),
        ("ineligible:cancelled", True),
        ("ineligible:risk_flag", True),
        ("ineligible:in_progress", True),
        ("ineligible:opted_out", True),
        ("ineligible:priority", False),
        ("ineligible:no_priority", False),
        ("ineligible:no_call_type", False),
        ("ineligible:unknown_call_type", False),
        ("ineligible:no_phone", False),
        ("ineligible:invalid_phone", False),
        (ELIGIBLE, False),
        ("new", False),
    ],
)
def test_only_safety_reasons_are_sticky(reason: str, sticky: bool) -> None:
    assert is_sticky(reason) is sticky


# --------------------------------------------------------------------------- quiet hours

NIGHT = DEFAULT_QUIET_HOURS  # 21:00-08:00 America/Toronto, wraps midnight
LUNCH = QuietHours(time(12, 0), time(13, 0), TZ)  # does not wrap


@pytest.mark.parametrize(
    ("window", "local_time", "inside"),
    [
        (NIGHT, time(20, 59, 59), False),
        (NIGHT, time(21, 0), True),
        (NIGHT, time(23, 59), True),
        (NIGHT, time(0, 0), True),
        (NIGHT, time(7, 59, 59), True),
        (NIGHT, time(8, 0), False),
        (NIGHT, time(12, 0), False),
        (LUNCH, time(11, 59), False),
        (LUNCH, time(12, 0), True),
        (LUNCH, time(12, 59), True),
        (LUNCH, time(13, 0), False),
        (LUNCH, time(0, 30), False),
    ],
)
def test_quiet_hours_contain_start_but_not_end(
    window: QuietHours, local_time: time, inside: bool
) -> None:
    moment = datetime.combine(datetime(2026, 1, 16).date(), local_time, tzinfo=TZ)
    assert window.contains(moment) is inside
    assert window.contains(moment.astimezone(UTC)) is inside  # any offset, same instant


def test_quiet_hours_are_local_time_not_utc() -> None:
    # 02:30 UTC is 21:30 in Toronto (EST): inside; 21:30 UTC is 16:30 in Toronto: outside.
    assert NIGHT.contains(datetime(2026, 1, 17, 2, 30, tzinfo=UTC))
    assert not NIGHT.contains(datetime(2026, 1, 16, 21, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("moment", "end"),
    [
        pytest.param(at(20, 59), at(20, 59), id="outside-unchanged"),
        pytest.param(at(8, 0), at(8, 0), id="at-end-unchanged"),
        pytest.param(at(21, 0), at(8, 0, day=17), id="at-start-next-morning"),
        pytest.param(at(23, 30), at(8, 0, day=17), id="before-midnight-next-morning"),
        pytest.param(at(0, 0), at(8, 0), id="midnight-same-morning"),
        pytest.param(at(7, 59), at(8, 0), id="just-before-end"),
    ],
)
def test_next_end_of_quiet_hours_across_midnight(moment: datetime, end: datetime) -> None:
    assert NIGHT.next_end(moment) == end
    assert NIGHT.next_end(moment.astimezone(UTC)) == end


def test_next_end_answers_in_the_offset_it_was_asked_in() -> None:
    result = NIGHT.next_end(datetime(2026, 1, 17, 3, 0, tzinfo=UTC))  # 22:00 EST
    assert result.tzinfo is UTC
    assert result == datetime(2026, 1, 17, 13, 0, tzinfo=UTC)  # 08:00 EST


@pytest.mark.parametrize(
    ("moment_utc", "end_utc"),
    [
        # Spring forward, 2026-03-08 02:00 EST -> 03:00 EDT: the night is an hour shorter.
        pytest.param("2026-03-08T02:00Z", "2026-03-08T12:00Z", id="spring-21:00EST"),
        pytest.param("2026-03-08T06:30Z", "2026-03-08T12:00Z", id="spring-01:30EST"),
        pytest.param("2026-03-08T07:30Z", "2026-03-08T12:00Z", id="spring-03:30EDT"),
        pytest.param("2026-03-08T11:59Z", "2026-03-08T12:00Z", id="spring-07:59EDT"),
        pytest.param("2026-03-08T12:00Z", "2026-03-08T12:00Z", id="spring-08:00EDT-outside"),
        # Fall back, 2026-11-01 02:00 EDT -> 01:00 EST: the night is an hour longer.
        pytest.param("2026-11-01T01:00Z", "2026-11-01T13:00Z", id="fall-21:00EDT"),
        pytest.param("2026-11-01T05:30Z", "2026-11-01T13:00Z", id="fall-01:30EDT"),
        pytest.param("2026-11-01T06:30Z", "2026-11-01T13:00Z", id="fall-01:30EST"),
        pytest.param("2026-11-01T12:59Z", "2026-11-01T13:00Z", id="fall-07:59EST"),
        pytest.param("2026-11-01T13:00Z", "2026-11-01T13:00Z", id="fall-08:00EST-outside"),
    ],
)
def test_quiet_hours_end_at_local_eight_across_dst_changes(moment_utc: str, end_utc: str) -> None:
    moment = datetime.fromisoformat(moment_utc)
    assert NIGHT.next_end(moment) == datetime.fromisoformat(end_utc)


def test_next_end_in_the_repeated_fall_hour_is_not_before_the_moment() -> None:
    # Window 00:00-01:30. At 01:15 EST (the second 01:15 of 2026-11-01, 06:15Z) the
    # window has started again; it ends at 01:30 EST (06:30Z), not at the first 01:30
    # (01:30 EDT, 05:30Z) which has already passed.
    window = QuietHours(time(0, 0), time(1, 30), TZ)
    moment = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
    assert window.contains(moment)
    assert window.next_end(moment) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_next_end_inside_the_spring_gap_is_when_the_clock_jumps() -> None:
    # Window 23:00-02:30. 02:30 does not exist on 2026-03-08: at 02:00 EST (07:00Z) the
    # clock reads 03:00 EDT, already outside the window; that is when it ends.
    window = QuietHours(time(23, 0), time(2, 30), TZ)
    moment = datetime(2026, 3, 8, 6, 59, tzinfo=UTC)  # 01:59 EST
    assert window.contains(moment)
    assert not window.contains(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
    assert window.next_end(moment) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_shift_leaves_confirmations_alone_and_moves_delay_and_survey() -> None:
    night = at(22, 0)
    assert NIGHT.shift(night, TextKind.CONFIRMATION) == night
    assert NIGHT.shift(night, TextKind.DELAY_NOTICE) == at(8, 0, day=17)
    assert NIGHT.shift(night, TextKind.SURVEY_INVITATION) == at(8, 0, day=17)
    assert make_policy(quiet_hours=None).shift_out_of_quiet_hours(night, TextKind.DELAY_NOTICE) == (
        night
    )
    assert not POLICY.in_quiet_hours(night, TextKind.CONFIRMATION)
    assert POLICY.in_quiet_hours(night, TextKind.SURVEY_INVITATION)


def test_the_configured_window_is_applied_in_the_agency_s_time_zone() -> None:
    written = QuietHours.parse("21:00-08:00")  # as the configuration reads it: no zone
    assert written.tz is None
    assert written.in_zone(TZ) == NIGHT
    assert str(NIGHT) == "21:00-08:00"


def test_quiet_hours_without_a_time_zone_are_never_applied() -> None:
    # Applied in UTC, 21:00-08:00 would let texts out at 17:00-04:00 in Toronto.
    written = QuietHours(time(21, 0), time(8, 0))
    with pytest.raises(ValueError, match="no time zone"):
        make_policy(quiet_hours=written)
    with pytest.raises(ValueError, match="no time zone"):
        written.contains(at(22, 0))


_DST_DAYS = (
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2026, 1, 16, 12, 0, tzinfo=UTC),
)
# Hours around the DST changes (01:00-03:00) come up often, the rest of the day too.
_quarter = st.builds(
    time,
    st.one_of(st.sampled_from((1, 2, 8, 21)), st.integers(0, 23)),
    st.sampled_from((0, 15, 30, 45)),
)


@PROPERTY_SETTINGS
@given(
    start=_quarter,
    end=_quarter,
    day=st.sampled_from(_DST_DAYS),
    minutes=st.one_of(st.integers(-3 * 60, 3 * 60), st.integers(-36 * 60, 36 * 60)),
)
def test_next_end_is_the_first_moment_outside_the_window(
    start: time, end: time, day: datetime, minutes: int
) -> None:
    window = QuietHours(start, end, TZ)
    moment = day + timedelta(minutes=minutes)
    result = window.next_end(moment)
    assert result >= moment, f"{window} sends {moment:%Y-%m-%dT%H:%MZ} back to {result}"
    assert not window.contains(result)
    if window.contains(moment):
        assert window.contains(result - timedelta(minutes=1)), (
            f"{window}: {result} is not the first minute outside after {moment}"
        )
    else:
        assert result == moment


# --------------------------------------------------------------------------- check_before_send

FREE = PhoneContext(opted_out=False, texts_last_24h=0)
FAR = local(2027, 1, 1, 0, 0)


def check(
    call: Call,
    kind: TextKind,
    now: datetime,
    *,
    expires_at: datetime = FAR,
    phone: PhoneContext = FREE,
    policy=POLICY,
) -> SendCheck:
    return check_before_send(call, kind, expires_at=expires_at, phone=phone, policy=policy, now=now)


def cleared_call(**changes: object) -> Call:
    return eligible_call(cleared_at=at(11), dispatched_at=at(10, 30), **changes)


@pytest.mark.parametrize(
    ("call", "kind", "reason"),
    [
        pytest.param(eligible_call(), TextKind.CONFIRMATION, ELIGIBLE, id="confirmation-ok"),
        pytest.param(eligible_call(), TextKind.DELAY_NOTICE, ELIGIBLE, id="delay-ok"),
        pytest.param(cleared_call(), TextKind.SURVEY_INVITATION, ELIGIBLE, id="survey-ok"),
        pytest.param(
            cleared_call(), TextKind.CONFIRMATION, "suppressed:stale", id="confirmation-cleared"
        ),
        pytest.param(
            eligible_call(case_number=None),
            TextKind.CONFIRMATION,
            "suppressed:no_case_number",
            id="confirmation-no-case-number",
        ),
        pytest.param(
            eligible_call(dispatched_at=at(10, 20)),
            TextKind.DELAY_NOTICE,
            "suppressed:stale",
            id="delay-dispatched",
        ),
        pytest.param(
            eligible_call(arrived_at=at(10, 20)),
            TextKind.DELAY_NOTICE,
            "suppressed:stale",
            id="delay-arrived-without-dispatch",
        ),
        pytest.param(
            eligible_call(cleared_at=at(10, 20)),
            TextKind.DELAY_NOTICE,
            "suppressed:stale",
            id="delay-cleared",
        ),
        pytest.param(
            eligible_call(),
            TextKind.SURVEY_INVITATION,
            "suppressed:not_cleared",
            id="survey-not-cleared",
        ),
        pytest.param(
            cleared_call(risk_flag=True),
            TextKind.SURVEY_INVITATION,
            "suppressed:risk_flag",
            id="survey-risk-flag",
        ),
        pytest.param(
            eligible_call(in_progress=True),
            TextKind.CONFIRMATION,
            "suppressed:in_progress",
            id="in-progress",
        ),
        pytest.param(
            eligible_call(caller_opted_out=True),
            TextKind.CONFIRMATION,
            "suppressed:opted_out",
            id="opted-out-in-cad",
        ),
        pytest.param(
            eligible_call(priority=2), TextKind.DELAY_NOTICE, "suppressed:priority", id="priority"
        ),
        pytest.param(
            eligible_call(call_type_code="ROBBERYX"),
            TextKind.CONFIRMATION,
            "suppressed:unknown_call_type",
            id="unknown-type",
        ),
        pytest.param(
            eligible_call(merged_into="I-9"),
            TextKind.CONFIRMATION,
            "suppressed:merged",
            id="merged",
        ),
        pytest.param(
            cleared_call(cancelled_at=at(11)),
            TextKind.SURVEY_INVITATION,
            "suppressed:cancelled",
            id="cancelled",
        ),
        pytest.param(
            eligible_call(phone=None),
            TextKind.CONFIRMATION,
            "suppressed:no_phone",
            id="no-phone",
        ),
    ],
)
def test_check_before_send_decides_from_the_call_as_it_is_now(
    call: Call, kind: TextKind, reason: str
) -> None:
    result = check(call, kind, at(12))
    assert result.reason == reason
    assert result.ok is (reason == ELIGIBLE)
    assert result.retry_at is None


@pytest.mark.parametrize("code", EXCLUDED_CODES)
@pytest.mark.parametrize("kind", [TextKind.CONFIRMATION, TextKind.SURVEY_INVITATION])
def test_check_before_send_suppresses_reclassified_call(code: str, kind: TextKind) -> None:
    result = check(cleared_call(call_type_code=code), kind, at(12))
    assert not result.ok
    assert result.reason == f"suppressed:{CALL_TYPES[code].category}"
    assert result.retry_at is None


def test_check_before_send_suppresses_a_text_past_its_expiry_but_not_at_it() -> None:
    call = eligible_call()
    assert check(call, TextKind.DELAY_NOTICE, at(14), expires_at=at(14)).ok
    late = check(call, TextKind.DELAY_NOTICE, at(14, 0, 1), expires_at=at(14))
    assert late.reason == "suppressed:stale"


def test_check_before_send_suppresses_an_opted_out_number() -> None:
    result = check(eligible_call(), TextKind.CONFIRMATION, at(12), phone=PhoneContext(True, 0))
    assert result.reason == "suppressed:opted_out"


@pytest.mark.parametrize(
    ("cap", "texts", "ok"),
    [(8, 7, True), (8, 8, False), (8, 30, False), (1, 0, True), (1, 1, False)],
)
def test_check_before_send_keeps_to_the_daily_cap_per_phone(cap: int, texts: int, ok: bool) -> None:
    policy = make_policy(max_texts_per_phone_per_day=cap)
    result = check(
        eligible_call(),
        TextKind.CONFIRMATION,
        at(12),
        phone=PhoneContext(False, texts),
        policy=policy,
    )
    assert result.ok is ok
    assert result.reason == (ELIGIBLE if ok else "suppressed:daily_cap")


@pytest.mark.parametrize(
    ("call", "kind", "now", "retry_at"),
    [
        pytest.param(
            eligible_call(), TextKind.DELAY_NOTICE, at(22, 0), at(8, 0, day=17), id="delay-22h"
        ),
        pytest.param(
            eligible_call(),
            TextKind.DELAY_NOTICE,
            at(3, 0, day=17),
            at(8, 0, day=17),
            id="delay-3h",
        ),
        pytest.param(
            cleared_call(), TextKind.SURVEY_INVITATION, at(21, 0), at(8, 0, day=17), id="survey-21h"
        ),
        pytest.param(
            cleared_call(),
            TextKind.SURVEY_INVITATION,
            local(2026, 3, 8, 1, 30),
            local(2026, 3, 8, 8, 0),
            id="survey-spring-forward",
        ),
        pytest.param(
            cleared_call(),
            TextKind.SURVEY_INVITATION,
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # 01:30 EST, the second one
            datetime(2026, 11, 1, 13, 0, tzinfo=UTC),
            id="survey-fall-back",
        ),
    ],
)
def test_check_before_send_defers_delay_and_survey_to_the_end_of_quiet_hours(
    call: Call, kind: TextKind, now: datetime, retry_at: datetime
) -> None:
    result = check(call, kind, now)
    assert not result.ok
    assert result.reason == "deferred:quiet_hours"
    assert result.retry_at == retry_at


_STATES = {
    "open": eligible_call(),
    "dispatched": eligible_call(dispatched_at=at(10, 20)),
    "cleared": cleared_call(),
    "no-case-number": eligible_call(case_number=None),
    "risk-flag": eligible_call(risk_flag=True),
    "priority-2": cleared_call(priority=2),
}
_TIMELY = {
    TextKind.CONFIRMATION: {"open", "dispatched"},
    TextKind.DELAY_NOTICE: {"open", "no-case-number"},
    TextKind.SURVEY_INVITATION: {"cleared"},
}


@pytest.mark.parametrize("state", sorted(_STATES))
@pytest.mark.parametrize("kind", list(_TIMELY))
@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
@pytest.mark.parametrize("expired", [False, True], ids=["fresh", "expired"])
@pytest.mark.parametrize("opted_out", [False, True], ids=["subscribed", "opted-out"])
@pytest.mark.parametrize("at_cap", [False, True], ids=["under-cap", "at-cap"])
def test_check_before_send_sends_defers_or_suppresses_every_combination(
    state: str, kind: TextKind, night: bool, expired: bool, opted_out: bool, at_cap: bool
) -> None:
    now = at(23, 0) if night else at(12, 0)
    expires_at = now - timedelta(seconds=1) if expired else now
    phone = PhoneContext(opted_out=opted_out, texts_last_24h=8 if at_cap else 7)
    # "no-case-number" is an eligible call; only its confirmation is not timely.
    may_go = state in _TIMELY[kind] and not expired and not opted_out and not at_cap
    quiet = night and kind is not TextKind.CONFIRMATION
    result = check(_STATES[state], kind, now, expires_at=expires_at, phone=phone)
    if may_go and not quiet:
        assert (result.reason, result.retry_at) == (ELIGIBLE, None)
    elif may_go:
        assert (result.reason, result.retry_at) == ("deferred:quiet_hours", at(8, 0, day=17))
    else:
        assert result.reason.startswith("suppressed:"), result
        assert result.retry_at is None


def test_check_before_send_lets_confirmations_through_quiet_hours() -> None:
    assert check(eligible_call(), TextKind.CONFIRMATION, at(23, 30)).ok


def test_check_before_send_sends_anything_at_night_when_quiet_hours_are_off() -> None:
    policy = make_policy(quiet_hours=None)
    assert check(eligible_call(), TextKind.DELAY_NOTICE, at(23, 30), policy=policy).ok


def test_check_before_send_suppresses_rather_than_defers_what_may_never_go() -> None:
    # In quiet hours, an opted-out phone / a capped phone / an ineligible call is a "no",
    # not a "later".
    night = at(23, 30)
    assert check(
        eligible_call(), TextKind.DELAY_NOTICE, night, phone=PhoneContext(True, 0)
    ).reason == ("suppressed:opted_out")
    capped = PhoneContext(False, 8)
    assert check(eligible_call(), TextKind.DELAY_NOTICE, night, phone=capped).reason == (
        "suppressed:daily_cap"
    )
    assert check(eligible_call(risk_flag=True), TextKind.DELAY_NOTICE, night).reason == (
        "suppressed:risk_flag"
    )


def test_check_before_send_uses_the_folded_call_after_a_late_risk_flag() -> None:
    call, _ = apply_all(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(9, 0), risk_flag=True)]
    )
    assert check(call, TextKind.CONFIRMATION, at(10, 1)).reason == "suppressed:risk_flag"


def test_new_call_is_not_eligible() -> None:
    assert eligibility(new_call("a", "I-1"), POLICY) == "ineligible:no_priority"
