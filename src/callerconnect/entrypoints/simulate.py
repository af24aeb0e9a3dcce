"""``callerconnect simulate``: the generated CAD feed (service/cad_feed.py) written to a
file, posted to an intake API or published to NATS JetStream, at F times real time."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from nats.errors import NoServersError

from callerconnect.config import load_settings
from callerconnect.service.cad_feed import (
    DEFAULT_CALLS_PER_DAY,
    CallTypeEntry,
    FeedPlan,
    generate,
)
from callerconnect.service.simulation import FeedEvent

#: Events per POST: well under the intake's default ``max_batch``.
POST_BATCH = 200
#: Tries per POST answered 429 or 5xx (or not answered), waiting longer each time.
POST_ATTEMPTS = 8


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _start(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time with its offset, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset (add +00:00 or -05:00)")
    return moment


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="FILE.jsonl", help="write the feed, one event a line")
    where.add_argument(
        "--post", metavar="URL", help="POST batches to an intake's /api/v1/cad/events"
    )
    where.add_argument("--nats", metavar="URL", help="publish to NATS JetStream (nats.stream)")
    parser.add_argument("--key", metavar="KEY", help="intake key for --post")
    parser.add_argument(
        "--calls-per-day",
        type=_positive_int,
        default=DEFAULT_CALLS_PER_DAY,
        metavar="N",
        help=f"priority 3-4 calls a day (default {DEFAULT_CALLS_PER_DAY}, Ottawa 2024); "
        "urgent and excluded calls come on top",
    )
    parser.add_argument("--days", type=_positive_int, default=1, metavar="D")
    parser.add_argument(
        "--surge",
        type=_non_negative_float,
        default=1.0,
        metavar="X",
        help="the middle day at X times the usual rate",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="same seed, same feed")
    parser.add_argument(
        "--speed",
        type=_non_negative_float,
        default=0.0,
        metavar="F",
        help="F times real time; 0 (the default) as fast as possible",
    )
    parser.add_argument(
        "--start",
        type=_start,
        default=None,
        metavar="TIME",
        help="when the feed starts, ISO 8601 with offset (default: now when paced, "
        "else D days ago so the feed ends about now); in the future only with --out",
    )


def bundled_call_types() -> list[CallTypeEntry]:
    table = resources.files("callerconnect.data").joinpath("call-types.csv")
    rows = csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"), newline=""))
    return [
        CallTypeEntry(row["code"], row["description_en"], row["textable"] == "yes") for row in rows
    ]


def paced(events: Iterable[FeedEvent], speed: float, start: datetime) -> Iterator[FeedEvent]:
    """Each event when its moment comes at ``speed`` times real time (0: at once)."""
    began = time.monotonic()
    for item in events:
        if speed > 0:
            due = (item.delivered_at - start).total_seconds() / speed
            wait = due - (time.monotonic() - began)
            if wait > 0:
                time.sleep(wait)
        yield item


def write_jsonl(events: Iterable[FeedEvent], path: Path) -> int:
    sent = 0
    with path.open("w", encoding="utf-8") as out:
        for item in events:
            out.write(json.dumps(item.payload, ensure_ascii=False) + "\n")
            out.flush()
            sent += 1
    return sent


def _batches(
    events: Iterable[FeedEvent], size: int, speed: float
) -> Iterator[list[dict[str, Any]]]:
    """Groups to send together: up to ``size`` at full speed; paced, whatever has come
    due by the time the previous group went (at least one)."""
    batch: list[dict[str, Any]] = []
    for item in events:
        batch.append(item.payload)
        if len(batch) >= size or speed > 0:
            yield batch
            batch = []
    if batch:
        yield batch


def post_batches(
    events: Iterable[FeedEvent],
    url: str,
    key: str,
    speed: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    sent = 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for batch in _batches(events, POST_BATCH, speed):
            _post_with_retries(client, url, {"events": batch}, sleep)
            sent += len(batch)
    return sent


def _post_with_retries(
    client: httpx.Client, url: str, body: dict[str, Any], sleep: Callable[[float], None]
) -> None:
    for attempt in range(POST_ATTEMPTS):
        try:
            answer = client.post(url, json=body)
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code < 500 and answer.status_code != 429:
            if answer.status_code >= 400:
                raise SimulateError(f"{url} answered {answer.status_code}: {answer.text[:200]}")
            return
        if attempt == POST_ATTEMPTS - 1:
            status = answer.status_code if answer is not None else "no answer"
            raise SimulateError(f"{url}: still {status} after {POST_ATTEMPTS} tries")
        retry_after = answer.headers.get("retry-after", "") if answer is not None else ""
        sleep(float(retry_after) if retry_after.isdigit() else min(30.0, 0.5 * 2**attempt))


def publish_nats(
    events: Iterable[FeedEvent], url: str, stream: str, subject_prefix: str, agency_id: str
) -> int:
    """Each event to ``<prefix>.<agency>.events``, its event id as ``Nats-Msg-Id``."""
    import nats

    from callerconnect.adapters.cad.jetstream import ensure_stream

    subject = f"{subject_prefix}.{agency_id}.events"

    async def publish() -> int:
        connection = await nats.connect(url)
        sent = 0
        try:
            js = connection.jetstream()
            await ensure_stream(js, stream, subject_prefix)
            for item in events:
                await js.publish(
                    subject,
                    json.dumps(item.payload, ensure_ascii=False).encode(),
                    stream=stream,
                    headers={"Nats-Msg-Id": item.payload["event_id"]},
                )
                sent += 1
        finally:
            await connection.drain()
        return sent

    return asyncio.run(publish())


class SimulateError(Exception):
    pass


def run_simulate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.post and not args.key:
        print("error: --post needs --key (an intake key)", file=sys.stderr)
        return 2
    # Paced, the feed starts now; as fast as possible, it ends about now, so no event
    # is dated in the future.
    now = datetime.now(settings.tz)
    if args.start is not None and args.start > now and not args.out:
        # The intake refuses an event dated ahead of its receipt (intake.max_clock_skew):
        # sent, a future feed would only fill the dead letters. A file is only bytes.
        print(
            f"error: --start {args.start.isoformat()} is in the future; the intake refuses "
            "events dated ahead of their receipt. Give a --start at or before now, or "
            "write the feed with --out FILE",
            file=sys.stderr,
        )
        return 2
    start = args.start or (now if args.speed > 0 else now - timedelta(days=args.days))
    plan = FeedPlan(
        start=start,
        days=args.days,
        calls_per_day=args.calls_per_day,
        surge=args.surge,
        seed=args.seed,
    )
    events = paced(generate(plan, bundled_call_types()), args.speed, start)
    try:
        if args.out:
            sent = write_jsonl(events, Path(args.out))
        elif args.post:
            sent = post_batches(events, args.post, args.key, args.speed)
        else:
            nats = settings.nats
            sent = publish_nats(
                events, args.nats, nats.stream, nats.subject_prefix, settings.agency_id
            )
    except (SimulateError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except NoServersError:
        print(f"error: cannot reach the NATS server at {args.nats}", file=sys.stderr)
        return 1
    print(f"{sent} events sent")
    return 0
