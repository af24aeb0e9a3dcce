"""A backlog through Twilio while Twilio misbehaves: every text once, the cap held.

A real worker (``Dispatcher.run_forever`` on the system clock, in a thread) drains a
backlog of confirmations through the Twilio provider to a Twilio-compatible server that,
like Twilio, calls the status webhook back (signed) on the application's real HTTP
server. While the backlog drains the server answers HTTP 500s, throttles (429 with
Retry-After) and once takes a text but answers after the client gave up. One caller
opted out by texting STOP before their call; another opted out at the carrier (21610).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from callerconnect.bootstrap import build_application, build_provider
from callerconnect.clock import SystemClock
from callerconnect.service.dispatcher import RATE_HEADROOM
from callerconnect.web.app import create_app
from tests.conftest import make_settings
from tests.support.dispatch import gaps, most_in_window, received, submit, texts, twilio_env
from tests.support.fake_twilio import DEFAULT_AUTH_TOKEN, Fault
from tests.support.live_server import LiveServer
from tests.support.twilio_webhooks import CallbackTwilio, inbound_form, twilio_signature

PUBLIC = "https://callerconnect.example.org"
RATE = 10.0
CALLS = 30


@pytest.fixture
def twilio() -> Iterator[CallbackTwilio]:
    with CallbackTwilio() as fake:
        yield fake
    assert not fake.errors, fake.errors


def phone(n: int) -> tuple[str, str]:
    """As the CAD gives it, and in E.164."""
    return f"613-555-{1000 + n}", f"+1613555{1000 + n}"


def test_backlog_through_outages_is_delivered_once_each_within_the_rate_cap(
    database_url: str, twilio: CallbackTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        **twilio_env(twilio),
        "CALLERCONNECT_PUBLIC_BASE_URL": PUBLIC,
        "CALLERCONNECT_SMS__MAX_PER_SECOND": str(RATE),
        "CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1s",
        "CALLERCONNECT_WORKER__RETRY_BASE": "2s",
    }
    settings = make_settings(database_url, **env)
    clock = SystemClock()
    app = build_application(settings, clock=clock, provider=build_provider(settings))
    stop = threading.Event()
    worker = threading.Thread(target=app.dispatcher.run_forever, args=(stop, 0.05))
    faults: list[threading.Timer] = []
    try:
        with LiveServer(create_app(app)) as server:
            twilio.deliver_to = server.url
            _, stopper = phone(0)
            _, carrier_opted_out = phone(1)
            twilio.opt_out(carrier_opted_out)  # replied STOP to our number long ago
            form = inbound_form("STOP", stopper, sid="SM" + "0" * 32)
            signature = twilio_signature(
                DEFAULT_AUTH_TOKEN, PUBLIC + "/webhooks/twilio/inbound", form
            )
            response = httpx.post(
                server.url + "/webhooks/twilio/inbound",
                data=form,
                headers={"X-Twilio-Signature": signature},
            )
            assert response.status_code == 200

            now = clock.now()
            for n in range(CALLS):
                cad, _ = phone(n)
                submit(app, received(f"I-{n}", now, phone=cad, case_number=f"26-{n:05d}"))
            for delay, count, fault in (
                (0.4, 3, Fault.HTTP_500),
                (1.0, 2, Fault.THROTTLE),
                (1.6, 1, Fault.SLOW),
                (2.2, 2, Fault.HTTP_503),
            ):
                timer = threading.Timer(delay, twilio.fail_next, (count, fault), {"delay": 1.5})
                faults.append(timer)
            started = time.monotonic()
            worker.start()
            for timer in faults:
                timer.start()

            def pending() -> list[Any]:
                return [
                    t
                    for t in texts(app)
                    if t.kind in ("confirmation", "reply")
                    and t.status not in ("delivered", "failed", "suppressed", "undelivered")
                ]

            deadline = time.monotonic() + 60
            while pending():
                assert time.monotonic() < deadline, pending()
                time.sleep(0.1)
            drained = time.monotonic() - started
            twilio.wait_callbacks()
    finally:
        for timer in faults:
            timer.cancel()
        stop.set()
        if worker.is_alive():
            worker.join(30)
        try:
            final = texts(app)  # before the close: a read after it opens a connection anew
        finally:
            app.close()

    confirmations = {t.incident: t for t in final if t.kind == "confirmation"}
    for n in range(2, CALLS):
        _, e164 = phone(n)
        [body] = twilio.bodies_to(e164)  # exactly once
        assert f"26-{n:05d}" in body
        assert confirmations[f"I-{n}"].status == "delivered", confirmations[f"I-{n}"]
    [opt_out_reply] = twilio.bodies_to(stopper)  # only the opt-out confirmation
    assert "START" in opt_out_reply
    assert confirmations["I-0"].reason == "suppressed:opted_out"
    assert twilio.bodies_to(carrier_opted_out) == []
    assert (confirmations["I-1"].status, confirmations["I-1"].error_code) == (
        "failed",
        "opted_out",
    )

    arrivals = [a.at for a in twilio.arrivals]
    statuses = [r.status for r in twilio.requests]
    with capsys.disabled():
        print(
            f"\n[outage backlog, {database_url.split(':')[0]}] {CALLS} calls, cap {RATE:g}/s: "
            f"{len(arrivals)} requests ({statuses.count(201)} accepted, "
            f"{statuses.count(500) + statuses.count(503)} 5xx, {statuses.count(429)} 429, "
            f"1 answered after the client's timeout) in {arrivals[-1] - arrivals[0]:.2f}s; "
            f"drained in {drained:.2f}s; {len(twilio.callbacks)} callbacks; "
            + rate_figures(arrivals)
        )
    assert_within_cap(arrivals)


def rate_figures(arrivals: list[float]) -> str:
    return (
        f"busiest 1-s window {most_in_window(arrivals, 1.0)} requests, "
        f"busiest 0.95-s window {most_in_window(arrivals, 0.95)}, "
        f"min gap {min(gaps(arrivals)):.4f}s"
    )


def assert_within_cap(arrivals: list[float]) -> None:
    """The dispatcher spaces send slots exactly 1/cap apart across all workers, so a
    one-second window holds ``cap`` slots, ``cap + 1`` only at its very edge (the
    dispatcher's documented bound). Measured here where it matters, at the provider,
    which adds the jitter between a slot and the request landing."""
    assert most_in_window(arrivals, 1.0) <= RATE + 1
    assert most_in_window(arrivals, 0.9) <= RATE


def test_backlog_uses_the_whole_rate_cap(
    database_url: str, twilio: CallbackTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**twilio_env(twilio), "CALLERCONNECT_SMS__MAX_PER_SECOND": str(RATE)}
    settings = make_settings(database_url, **env)
    clock = SystemClock()
    app = build_application(settings, clock=clock, provider=build_provider(settings))
    stop = threading.Event()
    worker = threading.Thread(target=app.dispatcher.run_forever, args=(stop, 0.05))
    try:
        now = clock.now()
        for n in range(CALLS):
            cad, _ = phone(n)
            submit(app, received(f"I-{n}", now, phone=cad, case_number=f"26-{n:05d}"))
        worker.start()
        deadline = time.monotonic() + 30
        while len(twilio.messages) < CALLS:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)
        app.close()
    arrivals = [a.at for a in twilio.arrivals]
    span = arrivals[-1] - arrivals[0]
    ideal = (CALLS - 1) / RATE
    with capsys.disabled():
        print(
            f"\n[backlog, {database_url.split(':')[0]}] {CALLS} texts at cap {RATE:g}/s: "
            f"span {span:.3f}s (ideal {ideal:.3f}s, {ideal / span:.1%} of the cap used); "
            + rate_figures(arrivals)
        )
    assert len(arrivals) == CALLS
    # The cap is used, not just respected: slots are RATE_HEADROOM (5 %) apart, so the
    # span is ~3.03 s of an ideal 2.9 s on an idle machine (printed above). A CI machine
    # with two cores and both busy loses slots: 3.54 s once, 5.88 s (about every other
    # slot) on a slow day. So the bound only catches a dispatcher that stalls (a second's
    # poll between texts, a lease waited out: 30 s here); how much of the cap is used is
    # the bench's figure (bench/run.py, >= 0.95), not an assertion.
    assert span <= ideal * RATE_HEADROOM * 3
    assert_within_cap(arrivals)
