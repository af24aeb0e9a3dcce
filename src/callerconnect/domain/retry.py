"""When a text the provider did not take goes again: the retry and backoff rule.

A confirmation is worth most in the first minute after the call, and most provider
failures (a 5xx, a timeout) pass within seconds, so the first retries come within
seconds; later ones spread out exponentially to a cap, so a long outage is ridden out
without hammering the provider. A throttling answer is the provider asking us to slow
down: its ``Retry-After`` is honoured and the attempt does not count, since nothing
failed. Jitter is a value the caller draws (``random.random()``) so the rule stays a pure
function: workers that failed together do not retry together.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta


class Failure(enum.Enum):
    """What a provider's refusal means for the next try."""

    THROTTLED = "throttled"
    """Slow down (Twilio 429, SMPP throttling): every worker pauses, the attempt is free."""
    UNAVAILABLE = "unavailable"
    """The provider is down (5xx, connection refused): every worker pauses briefly."""
    TRANSIENT = "transient"
    """This try failed and was not sent: the same text may succeed later."""
    UNANSWERED = "unanswered"
    """No answer in time (a timeout): the provider may have taken the text. The retry
    waits at least :data:`UNANSWERED_WAIT`, so that the provider's status callback can
    adopt the text first (docs/sms.md, "Lost answers") rather than a second copy go out."""
    PERMANENT = "permanent"
    """Never going to succeed (invalid number, opted out, refused): no retry."""


#: Least wait after an unanswered try: the provider's callbacks come within seconds.
UNANSWERED_WAIT = timedelta(seconds=30)
#: Pause of every worker after a throttling answer that does not say how long.
THROTTLE_PAUSE = timedelta(seconds=1)
#: Pause of every worker after the provider answered that it is unavailable: a backlog
#: is not burnt through against a provider that is down.
OUTAGE_PAUSE = timedelta(seconds=1)


@dataclass(frozen=True)
class RetryRule:
    """The backoff: ``first`` after the first failed attempt, ``factor`` times longer
    after each further one, never more than ``cap``; a text is failed after
    ``max_attempts`` counted attempts. With the defaults the retries come after about
    2 s, 6 s, 18 s, 54 s, 2.7 min, 8 min and 24 min (about 36 minutes in all), so two
    failures in a row cost a confirmation seconds, and an outage of half an hour loses
    nothing."""

    first: timedelta = timedelta(seconds=2)
    factor: float = 3.0
    cap: timedelta = timedelta(minutes=30)
    max_attempts: int = 8
    spread: float = 0.25
    """Each delay is scaled by a factor within 1 ± ``spread``, chosen by the jitter."""

    def __post_init__(self) -> None:
        if self.first <= timedelta(0) or self.cap < self.first:
            raise ValueError("first must be positive and at most cap")
        if self.factor < 1 or not 0 <= self.spread < 1 or self.max_attempts < 1:
            raise ValueError("factor >= 1, 0 <= spread < 1 and max_attempts >= 1")


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay``; ``counts`` says whether the failed try counts toward
    ``max_attempts`` (a throttled one does not)."""

    delay: timedelta
    counts: bool


def backoff(rule: RetryRule, attempt: int, jitter: float) -> timedelta:
    """The wait after counted attempt number ``attempt`` (1 for the first) failed;
    ``jitter`` in [0, 1) moves it within the rule's spread, never past the cap."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    steps = max(0, attempt - 1)
    # Compared in seconds before multiplying: factor ** steps overflows a timedelta.
    cap = rule.cap.total_seconds()
    base = min(cap, rule.first.total_seconds() * rule.factor ** min(steps, 64))
    scaled = base * (1 + rule.spread * (2 * jitter - 1))
    return timedelta(seconds=min(cap, scaled))


def provider_pause(failure: Failure, retry_after: float | None) -> timedelta | None:
    """How long every worker holds off after this failure (the shared rate slot): the
    provider's ``Retry-After`` when it throttles us, a short pause when it is down."""
    if failure is Failure.THROTTLED:
        if retry_after is not None and retry_after > 0:
            return timedelta(seconds=retry_after)
        return THROTTLE_PAUSE
    if failure is Failure.UNAVAILABLE:
        return OUTAGE_PAUSE
    return None


def next_try(
    rule: RetryRule,
    attempt: int,
    failure: Failure,
    *,
    jitter: float,
    retry_after: float | None = None,
) -> Retry | None:
    """After counted attempt number ``attempt`` failed with ``failure``: when to try
    again, or None to give up (a permanent failure, or the attempts used up)."""
    if failure is Failure.THROTTLED:
        pause = provider_pause(failure, retry_after)
        assert pause is not None
        return Retry(pause, counts=False)
    if failure is Failure.PERMANENT or attempt >= rule.max_attempts:
        return None
    delay = backoff(rule, attempt, jitter)
    if failure is Failure.UNANSWERED:
        delay = max(delay, UNANSWERED_WAIT)
    return Retry(delay, counts=True)
