"""Event time against receipt time.

Facts are ordered by the time the CAD stamped on them (``occurred_at``), so that late and
out-of-order events fold right. A stamp ahead of the moment we received the event cannot
be true — nothing is received before it happens — and trusting it would let a CAD whose
clock runs ahead (or a second feed) make every later, genuine change of the call look
older: an upgrade to priority 1 would lose to the benign value stamped "tomorrow". So the
intake refuses an event stamped further ahead of its receipt than a small drift
(``intake.max_clock_skew``, a few seconds; ``docs/intake.md``). Within that drift a
genuine change can still look older; the lifecycle then fails closed
(``lifecycle.decide``: a danger that loses to a benign value blocks the call for good).
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: The drift tolerated by default: NTP keeps a CAD clock well within it.
DEFAULT_MAX_CLOCK_SKEW = timedelta(seconds=5)


def time_ahead(
    occurred_at: datetime, received_at: datetime, max_skew: timedelta
) -> timedelta | None:
    """How far ahead of its receipt an event claims to have happened, when that is more
    than ``max_skew``; None for an event that may be folded."""
    ahead = occurred_at - received_at
    return ahead if ahead > max_skew else None
