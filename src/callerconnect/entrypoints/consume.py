"""``callerconnect consume``: the CAD feed from NATS JetStream into the intake, until
SIGTERM or SIGINT (the message in hand is finished first)."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal

from callerconnect.adapters.cad.jetstream import Feed, consume
from callerconnect.bootstrap import Application
from callerconnect.config import NatsSettings
from callerconnect.logs import log_event
from callerconnect.service.envelopes import Envelopes
from callerconnect.service.feed_messages import handle_message

log = logging.getLogger("callerconnect.feed")


def feed_of(nats: NatsSettings, url: str | None = None) -> Feed:
    return Feed(
        url=url or nats.url,
        stream=nats.stream,
        durable=nats.durable,
        subject_prefix=nats.subject_prefix,
        ack_wait=nats.ack_wait,
    )


def run_consumer(application: Application, url: str | None = None) -> int:
    """Consume until stopped; returns how many messages were acknowledged."""
    settings = application.settings
    feed = feed_of(settings.nats, url)
    # The subject names the agency (cad.<agency_id>.events): each agency's own intake.
    by_agency = {
        agency_id: Envelopes(intake, max_batch=settings.intake.max_batch)
        for agency_id, intake in application.intakes.items()
    }
    handle = functools.partial(handle_message, by_agency, prefix=feed.subject_prefix)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log_event(log, "feed_consuming", stream=feed.stream, durable=feed.durable)
        return await consume(feed, lambda subject, data: handle(subject, data), stop)

    acked = asyncio.run(main())
    log_event(log, "feed_stopped", acknowledged=acked)
    return acked
