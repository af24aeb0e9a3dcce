"""Time is injected: the real clock in production, a virtual one for replays and tests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait; a virtual clock moves forward instead."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock that only moves when told to (or when something sleeps on it).

    Replays and the demo run a whole day in seconds with it; tests freeze time with it.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._live = False
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._live:
                self._now = max(self._now, datetime.now(UTC))
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._live:
            time.sleep(seconds)
        else:
            self.advance(timedelta(seconds=seconds))

    def go_live(self) -> None:
        """From now on follow the real clock (never going back): a replay that has
        caught up with the present hands over to real time."""
        with self._lock:
            self._live = True

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now = self._now + delta

    def set(self, moment: datetime) -> None:
        """Move to ``moment``; never backwards."""
        with self._lock:
            moment = moment.astimezone(UTC)
            if moment > self._now:
                self._now = moment
