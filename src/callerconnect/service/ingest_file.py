"""``callerconnect ingest``: a JSON-lines file of native events through the intake."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from callerconnect.service.envelopes import Envelopes, Refusal
from callerconnect.service.intake import FOLD_CHUNK


def _is_single_event(body: Any) -> bool:
    return isinstance(body, dict) and not ("events" in body and "event_id" not in body)


def ingest_lines(
    envelopes: Envelopes,
    lines: Sequence[str],
    on_progress: Callable[[int, int], object] | None = None,
) -> Counter[str]:
    """Submit each non-blank line, in file order: one event or a ``{"events": [...]}``
    batch. Lines of one event each are folded :data:`FOLD_CHUNK` at a time through the
    batched intake; what is refused (a line that is not JSON, a bad batch) goes to the
    dead letters. ``on_progress(done, total)`` is told after each line."""
    counts: Counter[str] = Counter(accepted=0, duplicate=0, rejected=0)
    pending: list[Any] = []

    def fold_pending() -> None:
        if pending:
            for result in envelopes.intake.submit_many(pending, "ingest"):
                counts[result.status] += 1
            pending.clear()

    for number, line in enumerate(lines, start=1):
        if line.strip():
            raw = line.encode("utf-8", errors="surrogatepass")
            body = envelopes.decode(raw, "ingest", what=f"line {number}", field="(line)")
            if isinstance(body, Refusal):
                counts["rejected"] += 1
            elif _is_single_event(body):
                pending.append(body)
                if len(pending) >= FOLD_CHUNK:
                    fold_pending()
            else:
                fold_pending()  # what came before it folds first
                delivery = envelopes.native(body, "ingest", raw=raw)
                for result in delivery.results:
                    counts[result.status] += 1
                if delivery.refusal is not None and delivery.refusal.kind != "event":
                    counts["rejected"] += 1
        if on_progress is not None:
            on_progress(number, len(lines))
    fold_pending()
    return counts
