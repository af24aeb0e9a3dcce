"""The scheduled open-data publication (``opendata.schedule = "monthly"``), run by every
``callerconnect worker``: once a local month is over and its survey answers are all in
(:func:`publishing.last_settled_month`), it is published, exactly once however many
workers run (the claim is in :func:`publishing.publish_due`)."""

from __future__ import annotations

import logging
import threading

from callerconnect.adapters.db.engine import Database
from callerconnect.clock import Clock
from callerconnect.config import Settings
from callerconnect.domain.survey import SurveyDefinition
from callerconnect.logs import log_event
from callerconnect.service.publishing import is_published, last_settled_month, publish_due

log = logging.getLogger("callerconnect.opendata")

#: How often a worker looks whether a month is due (cheap: one indexed lookup).
CHECK_EVERY_SECONDS = 300.0


def publish_if_due(
    db: Database, settings: Settings, definition: SurveyDefinition, clock: Clock
) -> str | None:
    """Publish the last settled month if nobody has; the period published, or None."""
    now = clock.now()
    period = last_settled_month(now, settings)
    if is_published(db, settings.agency_id, period):
        return None
    publication = publish_due(db, settings, definition, now)
    if publication is None:
        return None  # another worker claimed it first
    log_event(log, "opendata_published", agency=settings.agency_id, period=period)
    return period


def run_schedule(
    stop: threading.Event,
    db: Database,
    settings: Settings,
    definition: SurveyDefinition,
    clock: Clock,
    every: float = CHECK_EVERY_SECONDS,
) -> None:
    while not stop.is_set():
        for agency_id in settings.agency_ids:
            # Each agency publishes its own months, in its own time zone.
            agency = settings.for_agency(agency_id)
            try:
                publish_if_due(db, agency, definition, clock)
            except Exception:
                # The worker's texts matter more: log it and try again at the next check.
                log.exception("action=opendata_publish_failed agency=%s", agency_id)
        stop.wait(every)
