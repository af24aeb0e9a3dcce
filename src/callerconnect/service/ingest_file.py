"""``callerconnect ingest``: a JSON-lines file of native events through the intake."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from callerconnect.service.envelopes import Envelopes


def ingest_lines(
    envelopes: Envelopes,
    lines: Sequence[str],
    on_progress: Callable[[int, int], object] | None = None,
) -> Counter[str]:
    """Submit each non-blank line: one event or a ``{"events": [...]}`` batch. What is
    refused (a line that is not JSON, a bad batch) goes to the dead letters.
    ``on_progress(done, total)`` is told after each line."""
    counts: Counter[str] = Counter(accepted=0, duplicate=0, rejected=0)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            delivery = envelopes.receive(
                line.encode("utf-8", errors="surrogatepass"),
                "ingest",
                "native",
                what=f"line {number}",
                field="(line)",
            )
            for result in delivery.results:
                counts[result.status] += 1
            if delivery.refusal is not None and delivery.refusal.kind != "event":
                counts["rejected"] += 1
        if on_progress is not None:
            on_progress(number, len(lines))
    return counts
