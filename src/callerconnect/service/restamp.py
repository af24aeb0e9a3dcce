"""Move a recorded CAD feed to the present, so that a replay texts.

The examples carry the dates they were written on; replayed later, every text would be
past its moment and suppressed as ``stale`` (rightly: a confirmation a day late is
worse than none). Restamping shifts every ``occurred_at`` by one amount, so that the
feed's last event happens ``now``: the order and the gaps between events, which are what
the rules look at, stay as recorded. So what the file describes plays out as if it had
just happened: a call that the file already clears gets its survey invitation (its
confirmation is rightly stale: the call is over), a call still waiting for a unit gets
its confirmation now and its delay notice when due.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _events(lines: Sequence[str]) -> list[dict[str, object] | None]:
    parsed: list[dict[str, object] | None] = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        parsed.append(value if isinstance(value, dict) else None)
    return parsed


def latest_time(lines: Sequence[str]) -> datetime | None:
    """The latest readable ``occurred_at`` in the lines, if any."""
    times = [t for p in _events(lines) if p is not None and (t := _parse(p.get("occurred_at")))]
    return max(times) if times else None


def restamp_lines(lines: Sequence[str], *, now: datetime) -> list[str]:
    """The lines with each event's ``occurred_at`` shifted so that the latest is ``now``.

    A line that is not a JSON object with a readable ``occurred_at`` is kept as it is
    (the intake refuses it as it would have anyway). Each time keeps its own offset.
    """
    parsed = _events(lines)
    latest = latest_time(lines)
    if latest is None:
        return list(lines)
    shift: timedelta = now - latest
    out: list[str] = []
    for line, event in zip(lines, parsed, strict=True):
        moment = _parse(event.get("occurred_at")) if event is not None else None
        if event is None or moment is None:
            out.append(line)
            continue
        event["occurred_at"] = (moment + shift).isoformat(timespec="seconds")
        out.append(json.dumps(event, ensure_ascii=False))
    return out
