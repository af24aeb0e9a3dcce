"""The retry and backoff rule (domain/retry.py), table by table and as properties."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerconnect.domain.retry import (
    OUTAGE_PAUSE,
    THROTTLE_PAUSE,
    UNANSWERED_WAIT,
    Failure,
    Retry,
    RetryRule,
    backoff,
    next_try,
    provider_pause,
)

RULE = RetryRule()
MIDDLE = 0.5  # the jitter that leaves a delay as the rule states it
jitters = st.floats(min_value=0, max_value=1, exclude_max=True)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@pytest.mark.parametrize(
    ("attempt", "failure", "retry_after", "expected"),
    [
        (1, Failure.UNAVAILABLE, None, Retry(seconds(2), counts=True)),
        (2, Failure.UNAVAILABLE, None, Retry(seconds(6), counts=True)),
        (3, Failure.TRANSIENT, None, Retry(seconds(18), counts=True)),
        (4, Failure.TRANSIENT, None, Retry(seconds(54), counts=True)),
        (5, Failure.TRANSIENT, None, Retry(seconds(162), counts=True)),
        (6, Failure.TRANSIENT, None, Retry(seconds(486), counts=True)),
        (7, Failure.TRANSIENT, None, Retry(seconds(1458), counts=True)),
        (8, Failure.TRANSIENT, None, None),  # the eighth counted attempt was the last
        (1, Failure.UNANSWERED, None, Retry(UNANSWERED_WAIT, counts=True)),
        (4, Failure.UNANSWERED, None, Retry(seconds(54), counts=True)),
        (1, Failure.PERMANENT, None, None),
        (1, Failure.THROTTLED, None, Retry(THROTTLE_PAUSE, counts=False)),
        (1, Failure.THROTTLED, 0, Retry(THROTTLE_PAUSE, counts=False)),
        (3, Failure.THROTTLED, 20, Retry(seconds(20), counts=False)),
        (8, Failure.THROTTLED, 2.5, Retry(seconds(2.5), counts=False)),  # never gives up
    ],
)
def test_next_try_table(
    attempt: int, failure: Failure, retry_after: float | None, expected: Retry | None
) -> None:
    assert next_try(RULE, attempt, failure, jitter=MIDDLE, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [(0.0, seconds(1.5)), (0.25, seconds(1.75)), (0.5, seconds(2)), (0.75, seconds(2.25))],
)
def test_jitter_moves_the_first_retry_within_a_quarter(jitter: float, expected: timedelta) -> None:
    assert backoff(RULE, 1, jitter) == expected


@pytest.mark.parametrize(
    ("failure", "retry_after", "expected"),
    [
        (Failure.THROTTLED, 7, seconds(7)),
        (Failure.THROTTLED, None, THROTTLE_PAUSE),
        (Failure.THROTTLED, -1, THROTTLE_PAUSE),
        (Failure.UNAVAILABLE, None, OUTAGE_PAUSE),
        (Failure.TRANSIENT, None, None),
        (Failure.UNANSWERED, None, None),
        (Failure.PERMANENT, None, None),
    ],
)
def test_which_failures_pause_every_worker(
    failure: Failure, retry_after: float | None, expected: timedelta | None
) -> None:
    assert provider_pause(failure, retry_after) == expected


def test_a_custom_rule_caps_its_delays() -> None:
    rule = RetryRule(first=seconds(10), factor=2, cap=seconds(30), max_attempts=20, spread=0)
    assert [backoff(rule, n, 0) for n in range(1, 5)] == [
        seconds(10),
        seconds(20),
        seconds(30),
        seconds(30),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first": seconds(0)},
        {"first": seconds(60), "cap": seconds(30)},
        {"factor": 0.5},
        {"spread": 1.0},
        {"max_attempts": 0},
    ],
)
def test_a_rule_that_cannot_work_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryRule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_outside_the_unit_interval_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff(RULE, 1, jitter)


@given(attempt=st.integers(min_value=1, max_value=10_000), jitter=jitters)
def test_a_delay_is_positive_and_never_past_the_cap(attempt: int, jitter: float) -> None:
    delay = backoff(RULE, attempt, jitter)
    assert timedelta(0) < delay <= RULE.cap


@given(attempt=st.integers(min_value=1, max_value=30), jitter=jitters)
def test_delays_never_shrink_from_one_attempt_to_the_next_at_equal_jitter(
    attempt: int, jitter: float
) -> None:
    assert backoff(RULE, attempt, jitter) <= backoff(RULE, attempt + 1, jitter)


@given(first=jitters, second=jitters)
def test_two_failures_in_a_row_cost_a_text_seconds(first: float, second: float) -> None:
    for failure in (Failure.UNAVAILABLE, Failure.TRANSIENT):
        one = next_try(RULE, 1, failure, jitter=first)
        two = next_try(RULE, 2, failure, jitter=second)
        assert one is not None and two is not None
        assert one.delay + two.delay <= seconds(10)


@given(
    attempt=st.integers(min_value=1, max_value=100),
    jitter=jitters,
    retry_after=st.none() | st.floats(min_value=-5, max_value=3600),
)
def test_a_throttled_try_never_counts_and_waits_what_the_provider_asks(
    attempt: int, jitter: float, retry_after: float | None
) -> None:
    again = next_try(RULE, attempt, Failure.THROTTLED, jitter=jitter, retry_after=retry_after)
    assert again is not None and not again.counts
    if retry_after is not None and retry_after > 0:
        assert again.delay == seconds(retry_after)
    else:
        assert again.delay == THROTTLE_PAUSE


@given(attempt=st.integers(min_value=1, max_value=100), jitter=jitters)
def test_an_unanswered_try_waits_for_the_providers_callback(attempt: int, jitter: float) -> None:
    again = next_try(RULE, attempt, Failure.UNANSWERED, jitter=jitter)
    if attempt >= RULE.max_attempts:
        assert again is None
    else:
        assert again is not None and again.counts and again.delay >= UNANSWERED_WAIT
