"""The worker's own settings for sending: the rate limit, the lease, the retry rule and
how many texts one worker keeps in flight. What a text says and where it goes from are
its agency's (service/agencies.py)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from callerconnect.domain.retry import RetryRule

#: Slot spacing over the exact 1/rate: 95% of sms.max_per_second is used with a backlog.
RATE_HEADROOM = 1.05
#: Longest wait for a rate slot while holding a text (also at most a quarter lease). A
#: slot further away (a long Retry-After, a rate row set ahead by a wrong clock) is not
#: slept through: the text goes back to the queue until then, the worker moves on.
MAX_SLOT_WAIT = timedelta(seconds=5)
#: How long a provider may take to answer while one worker still keeps the link full: it
#: keeps ``max_per_second`` times this many sends in flight (Twilio answers in ~0.15 s).
#: No more: each send in flight holds a rate slot ahead, and a confirmation that falls
#: due during a backlog of survey invitations waits behind every slot already taken.
ANSWER_ALLOWANCE = timedelta(seconds=0.3)
#: Most sends one worker keeps in flight: each holds a database connection for the few
#: milliseconds of its transactions, and the pool has 15 (adapters/db/engine.py).
MAX_IN_FLIGHT = 12


@dataclass(frozen=True)
class DispatchOptions:
    """The worker's own settings; what a text says and where it goes from are its
    agency's (service/agencies.py)."""

    public_base_url: str
    max_per_second: float
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 20
    max_attempts: int = 8
    retry_base: timedelta = RetryRule.first
    retry_max: timedelta = RetryRule.cap
    phone_retention: timedelta = timedelta(days=2)
    owner: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")

    @property
    def send_interval(self) -> timedelta:
        """Slots a little wider than 1/rate: a send starts at its slot, but network
        jitter of a few milliseconds must not put rate + 1 requests into one second
        at the provider."""
        return timedelta(seconds=RATE_HEADROOM / self.max_per_second)

    @property
    def retry_rule(self) -> RetryRule:
        return RetryRule(first=self.retry_base, cap=self.retry_max, max_attempts=self.max_attempts)

    @property
    def slot_horizon(self) -> timedelta:
        """How far ahead a rate slot may be for a worker to wait for it holding a text."""
        return min(MAX_SLOT_WAIT, self.lease / 4)

    @property
    def claim_size(self) -> int:
        """Claim no more than can be sent within half a lease at the rate limit, so a
        claimed text is never still waiting when its lease runs out."""
        per_half_lease = int(self.max_per_second * self.lease.total_seconds() / 2)
        return max(1, min(self.batch_size, per_half_lease))

    @property
    def sends_in_flight(self) -> int:
        """How many texts a running worker sends at once: enough to use every rate slot
        while each send waits up to :data:`ANSWER_ALLOWANCE` for the provider's answer
        (one at a time, a provider answering in 150 ms caps a worker near 5 texts a
        second). The shared rate slots, not this number, keep the cap."""
        wanted = math.ceil(self.max_per_second * ANSWER_ALLOWANCE.total_seconds())
        return max(1, min(wanted, MAX_IN_FLIGHT, self.claim_size))
