"""``callerconnect ingest``: a JSON-lines file of native events through the intake."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

from callerconnect.adapters.cad.native import EventRejected
from callerconnect.service.intake import Intake


def ingest_lines(
    intake: Intake,
    lines: Sequence[str],
    on_progress: Callable[[int, int], object] | None = None,
) -> Counter[str]:
    """Submit each non-blank line; a line that is not JSON goes to the dead letters.
    ``on_progress(done, total)`` is told after each line."""
    counts: Counter[str] = Counter(accepted=0, duplicate=0, rejected=0)
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
                counts[intake.submit(payload, "ingest").status] += 1
        if on_progress is not None:
            on_progress(number, len(lines))
    return counts
