"""The CAD feed over NATS JetStream: the stream, the shared durable pull consumer, and
the loop that hands each message to a handler and acknowledges it as the handler says.

Delivery is at least once: a message is acknowledged only after the handler returns
``"ack"``; one whose consumer dies before that is delivered again after ``ack_wait``,
to whichever ``consume`` process fetches next. Any number of processes share the durable
consumer, each message going to one of them at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

log = logging.getLogger("callerconnect.feed")

Handler = Callable[[str, bytes], Literal["ack", "retry"]]

#: Messages fetched at a time. Small, so a graceful stop has little to hand back and a
#: process killed outright leaves few messages waiting for ``ack_wait``.
FETCH_BATCH = 16
#: How long a message that failed on our side waits before it is delivered again.
RETRY_DELAY = 5.0


@dataclass(frozen=True)
class Feed:
    url: str
    stream: str
    durable: str
    subject_prefix: str
    ack_wait: timedelta

    @property
    def subjects(self) -> str:
        return f"{self.subject_prefix}.>"


async def ensure_stream(js: JetStreamContext, stream: str, subject_prefix: str) -> None:
    """The stream, created over ``<prefix>.>`` if it does not exist yet."""
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject_prefix}.>"]))


async def consume(
    feed: Feed, handle: Handler, stop: asyncio.Event, *, fetch_timeout: float = 1.0
) -> int:
    """Fetch and handle messages until ``stop`` is set; the message in hand is finished
    first and the rest of its batch handed back. Returns how many were acknowledged.
    ``handle`` runs in a worker thread (it does blocking database work)."""
    connection = await nats.connect(feed.url, name="callerconnect-consume")
    acked = 0
    try:
        js = connection.jetstream()
        await ensure_stream(js, feed.stream, feed.subject_prefix)
        subscription = await js.pull_subscribe(
            feed.subjects,
            durable=feed.durable,
            stream=feed.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, ack_wait=feed.ack_wait.total_seconds()
            ),
        )
        while not stop.is_set():
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=fetch_timeout)
            except (NatsTimeout, TimeoutError):  # nats-py raises either when idle
                continue
            for index, message in enumerate(messages):
                if stop.is_set():
                    for unhandled in messages[index:]:
                        await unhandled.nak()
                    break
                verdict = await asyncio.to_thread(handle, message.subject, message.data)
                if verdict == "ack":
                    await message.ack_sync()
                    acked += 1
                else:
                    await message.nak(delay=RETRY_DELAY)
    finally:
        # Not drain(): it waits out the pull request still open at the server. Every
        # acknowledgement was confirmed (ack_sync) and a flush sends the last naks.
        if connection.is_connected:
            await connection.flush()
        await connection.close()
    return acked
