"""The rate slots hold ``sms.max_per_second`` in every one-second window, also when a
sending thread wakes late or its re-check runs past its slot (a busy machine): such a
send takes a later slot instead of going out bunched up with the next slots' sends.

Sending threads run under :class:`SteppedClock`, a discrete-event clock: a thread's
sleep blocks until every other thread is asleep too, then time jumps to the earliest
wake-up. Each thread may wake a fixed time later than it asked, as one the scheduler of
a busy machine runs late would, so slots reserved by punctual threads and late ones
interleave exactly as they do in a worker with several sends in flight, with no real
time and no timing in the assertions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.dispatch_options import RATE_HEADROOM, DispatchOptions
from callerconnect.service.send_pacing import LATE_TOLERANCE, WRITE_TOLERANCE, SendPacing
from callerconnect.service.send_recheck import Prepared
from tests.conftest import T0

CAP = 20.0


class SteppedClock(VirtualClock):
    """Virtual time shared by ``threads`` threads that only moves when all of them sleep
    (or are done); thread ``k`` wakes ``late[k]`` after the moment it slept until."""

    def __init__(self, start: datetime, late: list[timedelta]) -> None:
        super().__init__(start)
        self.late = late
        self._turn = threading.Condition()
        self._awake = len(late)
        self._wakes: dict[int, datetime] = {}
        self._index = threading.local()

    def run(self, work: Callable[[int], None]) -> None:
        def body(k: int) -> None:
            self._index.k = k
            try:
                work(k)
            finally:
                with self._turn:
                    self._awake -= 1
                    self._step()

        threads = [threading.Thread(target=body, args=(k,)) for k in range(len(self.late))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a sending thread hung"

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        k = self._index.k
        with self._turn:
            self._wakes[k] = self.now() + timedelta(seconds=seconds) + self.late[k]
            self._awake -= 1
            self._step()
            self._turn.wait_for(lambda: k not in self._wakes)

    def _step(self) -> None:
        """With every thread asleep, wake the earliest (the caller holds the lock)."""
        if self._awake or not self._wakes:
            return
        k = min(self._wakes, key=lambda j: (self._wakes[j], j))
        self.set(self._wakes.pop(k))
        self._awake += 1
        self._turn.notify_all()


def _pacing(app: Application, clock: VirtualClock) -> SendPacing:
    return SendPacing(
        app.db, clock, DispatchOptions(public_base_url="https://x.test", max_per_second=CAP)
    )


def _recheck(clock: VirtualClock, takes: timedelta) -> Callable[[int], Prepared | None]:
    def recheck(outbox_id: int) -> Prepared | None:
        clock.advance(takes)
        return Prepared(outbox_id, None, "+16135550100", "text", f"ref-{outbox_id}", takes)  # type: ignore[arg-type]

    return recheck


def _most_in_one_second(moments: list[datetime]) -> int:
    moments = sorted(moments)
    return max(
        sum(1 for later in moments[i:] if later - first < timedelta(seconds=1))
        for i, first in enumerate(moments)
    )


@pytest.mark.parametrize("late_ms", [0, 10, 20, 30, 45, 60, 200])
def test_sends_in_any_second_never_exceed_the_cap_when_some_threads_wake_late(
    app_factory: Callable[..., Application], sqlite_url: str, late_ms: int
) -> None:
    # Six sends in flight, as a worker at a cap of 20 keeps; every other one runs late.
    late = [timedelta(milliseconds=late_ms if k % 2 else 0) for k in range(6)]
    clock = SteppedClock(T0, late)
    app = app_factory(sqlite_url)
    pacing = _pacing(app, clock)
    recheck = _recheck(clock, timedelta(0))
    sent: list[datetime] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for outbox_id in range(k * 1000, k * 1000 + 40):
            if pacing.checked_in_slot(outbox_id, recheck) is not None:
                with lock:
                    sent.append(clock.now())

    clock.run(work)
    assert len(sent) >= 40, "the punctual threads' texts all went"
    assert _most_in_one_second(sent) <= CAP
    if timedelta(milliseconds=late_ms) <= LATE_TOLERANCE:
        assert len(sent) == 240  # on time (within the tolerance): every text goes


def test_a_re_check_that_runs_past_its_slot_sends_only_if_the_slots_move_on_behind_it(
    app_factory: Callable[..., Application], sqlite_url: str
) -> None:
    clock = VirtualClock(T0)
    app = app_factory(sqlite_url)
    pacing = _pacing(app, clock)
    slow = _recheck(clock, timedelta(milliseconds=300))
    sent: list[datetime] = []
    for outbox_id in range(60):
        if pacing.checked_in_slot(outbox_id, slow) is not None:
            sent.append(clock.now())
    assert len(sent) == 60  # alone, a slow re-check still sends: the slots move on
    assert _most_in_one_second(sent) <= CAP
    gaps = [b - a for a, b in pairwise(sent)]
    assert min(gaps) >= timedelta(seconds=RATE_HEADROOM / CAP) - LATE_TOLERANCE


@pytest.mark.parametrize("hop_ms", [0, 20, 40, 60, 200])
def test_a_send_held_on_its_way_to_the_provider_past_its_slot_is_not_written(
    app_factory: Callable[..., Application], sqlite_url: str, hop_ms: int
) -> None:
    """A starved machine can hold a text between the start of its send and the moment
    its bytes are written (the hand-off to the SMPP link's loop, the HTTP client). The
    provider asks ``in_time`` at that moment (``OutgoingSms.in_time``); what it writes
    never crowds a second, however long the hop."""
    late = [timedelta(milliseconds=hop_ms if k % 2 else 0) for k in range(6)]
    clock = SteppedClock(T0, [timedelta(0)] * 6)
    app = app_factory(sqlite_url)
    pacing = _pacing(app, clock)
    recheck = _recheck(clock, timedelta(0))
    written: list[datetime] = []
    reached: list[datetime] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for outbox_id in range(k * 1000, k * 1000 + 40):
            prepared = pacing.checked_in_slot(outbox_id, recheck)
            if prepared is None:
                continue
            assert prepared.slot is not None
            clock.sleep(late[k].total_seconds())  # on its way to the provider's edge
            with lock:
                reached.append(clock.now())
                if pacing.in_time(prepared.slot):
                    written.append(clock.now())

    clock.run(work)
    assert _most_in_one_second(written) <= CAP
    assert len(written) >= 120, "the punctual threads' texts all went"
    if timedelta(milliseconds=hop_ms) <= WRITE_TOLERANCE:
        assert written == reached  # within the tolerance every text is written
    if hop_ms >= 60:
        assert _most_in_one_second(reached) > CAP  # unchecked, the second was crowded
