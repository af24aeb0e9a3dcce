"""``GET /metrics`` in the Prometheus text format, computed from the database at scrape time.

Why from the database rather than counters kept in memory: the work is done by several
processes — ``serve`` takes the CAD events and the callbacks, any number of ``worker``
processes send, on any number of hosts — and every fact they produce is already written
down (events, dead letters, decisions, outbox rows, each status change with its time,
survey responses). prometheus-client's multiprocess mode would need a shared directory,
which only works for processes on one host, and loses its counts when that directory is
cleaned at a restart; the database is shared by all of them and is the truth. A scrape
costs a few grouped counts over indexed columns.

Totals are exposed as counters (they only grow, except when retention deletes rows,
which Prometheus treats like a restart); what is in a state now is a gauge.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Row, func, select

from callerconnect.adapters.db.tables import (
    CadEventRow,
    DeadLetterRow,
    DecisionRow,
    OutboxRow,
    SurveyResponseRow,
    TextStatusChangeRow,
)
from callerconnect.bootstrap import Application

LATENCY_WINDOW = timedelta(hours=1)
"""Provider latency is summarised over the sends of this last window."""


class DatabaseCollector(Collector):
    def __init__(self, application: Application) -> None:
        self.application = application

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "callerconnect_database_up", "1 when the database answered this scrape, else 0"
        )
        try:
            families = list(self._from_database())
        except Exception:  # an unreachable database is a reading of 0, not a failed scrape
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_database(self) -> Iterator[Metric]:
        now = self.application.clock.now()
        with self.application.db.transaction() as session:
            accepted = session.scalar(select(func.count()).select_from(CadEventRow)) or 0
            letters = session.execute(
                select(DeadLetterRow.status, func.count()).group_by(DeadLetterRow.status)
            ).all()
            decisions = session.execute(
                select(DecisionRow.code, func.count()).group_by(DecisionRow.code)
            ).all()
            texts = session.execute(
                select(OutboxRow.kind, OutboxRow.status, func.count()).group_by(
                    OutboxRow.kind, OutboxRow.status
                )
            ).all()
            due = session.execute(
                select(func.count(), func.min(OutboxRow.not_before)).where(
                    OutboxRow.status.in_(["scheduled", "sending"]),
                    OutboxRow.not_before <= now,
                )
            ).one()
            errors = session.execute(
                select(TextStatusChangeRow.reason, func.count())
                .where(
                    TextStatusChangeRow.reason.like("retry:%")
                    | TextStatusChangeRow.reason.like("failed:%")
                )
                .group_by(TextStatusChangeRow.reason)
            ).all()
            steps = session.execute(
                select(
                    TextStatusChangeRow.outbox_id,
                    TextStatusChangeRow.status,
                    TextStatusChangeRow.at,
                )
                .where(
                    TextStatusChangeRow.at >= now - LATENCY_WINDOW,
                    TextStatusChangeRow.status.in_(["sending", "sent"]),
                )
                .order_by(TextStatusChangeRow.id)
            ).all()
            responses = session.scalar(select(func.count()).select_from(SurveyResponseRow)) or 0

        intake = CounterMetricFamily(
            "callerconnect_intake_events",
            "CAD events stored, by result (rejected ones are kept as dead letters; a "
            "duplicate changes nothing and is not counted)",
            labels=["result"],
        )
        intake.add_metric(["accepted"], accepted)
        intake.add_metric(["rejected"], sum(count for _, count in letters))
        yield intake

        dead = GaugeMetricFamily(
            "callerconnect_dead_letters", "dead letters by status", labels=["status"]
        )
        for status, count in letters:
            dead.add_metric([status], count)
        yield dead

        decided = CounterMetricFamily(
            "callerconnect_decisions", "decisions recorded, by reason code", labels=["reason"]
        )
        for code, count in decisions:
            decided.add_metric([code], count)
        yield decided

        by_status = GaugeMetricFamily(
            "callerconnect_texts", "texts by kind and current status", labels=["kind", "status"]
        )
        for kind, status, count in texts:
            by_status.add_metric([kind, status], count)
        yield by_status

        backlog = GaugeMetricFamily(
            "callerconnect_outbox_backlog", "texts due now and not yet sent (scheduled or sending)"
        )
        backlog.add_metric([], due[0] or 0)
        yield backlog
        oldest = GaugeMetricFamily(
            "callerconnect_outbox_oldest_due_age_seconds",
            "how long the oldest text due has been waiting (0 when none)",
        )
        oldest_due = due[1]
        oldest.add_metric([], max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0)
        yield oldest

        failures = CounterMetricFamily(
            "callerconnect_provider_errors",
            "provider errors by reason (retry:<code> is retried, failed:<code> is final)",
            labels=["reason"],
        )
        for reason, count in errors:
            failures.add_metric([reason or "-"], count)
        yield failures

        latency = GaugeMetricFamily(
            "callerconnect_provider_latency_seconds",
            "time from claiming a text to the provider's acceptance, over the last hour",
            labels=["quantile"],
        )
        for quantile, value in _latency_quantiles(steps).items():
            latency.add_metric([quantile], value)
        yield latency

        answered = CounterMetricFamily(
            "callerconnect_survey_responses", "survey responses recorded"
        )
        answered.add_metric([], responses)
        yield answered


def _latency_quantiles(steps: Sequence[Row[int, str, datetime]]) -> dict[str, float]:
    started: dict[int, datetime] = {}
    durations: list[float] = []
    for outbox_id, status, at in steps:
        if status == "sending":
            started[outbox_id] = at
        elif outbox_id in started:
            durations.append((at - started.pop(outbox_id)).total_seconds())
    if not durations:
        return {}
    durations.sort()
    if len(durations) == 1:
        return {"0.5": durations[0], "0.9": durations[0], "1": durations[0]}
    deciles = statistics.quantiles(durations, n=10, method="inclusive")
    return {"0.5": statistics.median(durations), "0.9": deciles[8], "1": durations[-1]}


def metrics_registry(application: Application) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(application))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
