"""``callerconnect ingest``: a JSON-lines file of native events through the intake."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from callerconnect.adapters.cad.native import EventRejected
from callerconnect.service.intake import FOLD_CHUNK, Intake


def ingest_lines(
    intake: Intake, lines: Iterable[str], on_line: Callable[[], object] = lambda: None
) -> Counter[str]:
    """Submit each non-blank line, :data:`FOLD_CHUNK` events at a time through the
    batched intake (in file order); a line that is not JSON goes to the dead letters."""
    counts: Counter[str] = Counter(accepted=0, duplicate=0, rejected=0)
    pending: list[Any] = []

    def fold_pending() -> None:
        for result in intake.submit_many(pending, "ingest"):
            counts[result.status] += 1
        pending.clear()

    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                payload = json.loads(line)
            except ValueError as error:
                intake.dead_letter(
                    line,
                    "ingest",
                    EventRejected("(line)", "json", f"line {number}: not valid JSON ({error})"),
                )
                counts["rejected"] += 1
            else:
                pending.append(payload)
                if len(pending) >= FOLD_CHUNK:
                    fold_pending()
        on_line()
    fold_pending()
    return counts
