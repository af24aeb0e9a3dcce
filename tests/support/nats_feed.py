"""A private corner of the machine's NATS JetStream server for one test: its own stream
and subject prefix (parallel runs never see each other's messages), deleted at the end.

Without a reachable server the tests using it skip locally; in CI
(``CALLERCONNECT_REQUIRE_NATS=1``) they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

NATS_URL = os.environ.get("CALLERCONNECT_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE_NATS = os.environ.get("CALLERCONNECT_REQUIRE_NATS") == "1"


def _reachable(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class PrivateFeed:
    url: str
    stream: str
    durable: str
    prefix: str
    agency_id: str = "default"

    def env(self) -> dict[str, str]:
        """The settings a ``consume`` process needs to read this feed."""
        return {
            "CALLERCONNECT_NATS__URL": self.url,
            "CALLERCONNECT_NATS__STREAM": self.stream,
            "CALLERCONNECT_NATS__DURABLE": self.durable,
            "CALLERCONNECT_NATS__SUBJECT_PREFIX": self.prefix,
            # A killed consumer's messages come back quickly.
            "CALLERCONNECT_NATS__ACK_WAIT": "2s",
        }

    def subject(self, kind: str = "events", agency: str | None = None) -> str:
        return f"{self.prefix}.{agency or self.agency_id}.{kind}"

    def publish(self, messages: Iterable[tuple[str, bytes, str | None]]) -> None:
        """Publish (subject, payload, Nats-Msg-Id) in order, each confirmed by JetStream."""
        asyncio.run(self._publish(list(messages)))

    async def _publish(self, messages: list[tuple[str, bytes, str | None]]) -> None:
        connection = await nats.connect(self.url)
        try:
            js = connection.jetstream()
            await self._ensure_stream(js)
            for subject, data, msg_id in messages:
                headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                await js.publish(subject, data, stream=self.stream, headers=headers)
        finally:
            await connection.drain()

    async def _ensure_stream(self, js: Any) -> None:
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[f"{self.prefix}.>"])

    def consumer_state(self) -> tuple[int, int]:
        """(messages not yet delivered, delivered but not acknowledged); (-1, -1) before
        a consumer has created the durable consumer."""

        async def state() -> tuple[int, int]:
            connection = await nats.connect(self.url)
            try:
                info = await connection.jetstream().consumer_info(self.stream, self.durable)
                return info.num_pending, info.num_ack_pending
            except NotFoundError:
                return -1, -1
            finally:
                await connection.drain()

        return asyncio.run(state())

    def delete(self) -> None:
        async def delete() -> None:
            connection = await nats.connect(self.url)
            try:
                await connection.jetstream().delete_stream(self.stream)
            except NotFoundError:
                pass
            finally:
                await connection.drain()

        asyncio.run(delete())


def event_message(feed: PrivateFeed, event: dict[str, Any]) -> tuple[str, bytes, str | None]:
    return feed.subject(), json.dumps(event).encode(), event["event_id"]


def private_feed() -> Iterator[PrivateFeed]:
    """Body of a ``nats_feed`` fixture: a private stream, deleted afterwards."""
    if not _reachable(NATS_URL):
        if REQUIRE_NATS:
            pytest.fail(f"NATS is required (CALLERCONNECT_REQUIRE_NATS=1) but {NATS_URL} is down")
        pytest.skip("NATS not reachable")
    token = secrets.token_hex(6)
    feed = PrivateFeed(NATS_URL, f"CADTEST_{token}", f"test_{token}", f"cadtest{token}")
    try:
        yield feed
    finally:
        feed.delete()
