"""Publishing open data: the read side's figures → suppressed tables → files, stored where
the public pages serve them from (the ``publications`` tables), and written to a folder
for ``callerconnect publish --out``.

Months are local months (the agency's ``timezone``); a month is published once it is
over. Naming the current month publishes it as it stands so far (``partial``), and the
month is published again, whole, once it is over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import PublicationFileRow, PublicationRow
from callerconnect.config import Settings
from callerconnect.domain.survey import SurveyDefinition
from callerconnect.opendata.fields import QuestionInfo
from callerconnect.opendata.package import PackageInfo, build_files
from callerconnect.opendata.suppression import Tally
from callerconnect.opendata.tables import CellFigures, build_tables
from callerconnect.queries.figures import figures
from callerconnect.queries.filters import Filters

#: The first month the figures are read from (earlier calls cannot exist).
_EPOCH = date(2000, 1, 1)

UNKNOWN_DISTRICT = "unknown"


class PublishError(ValueError):
    """A publication that cannot be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Publication:
    agency_id: str
    period: str
    partial: bool
    published_at: datetime
    files: dict[str, bytes]


Progress = Callable[[str, int, int], None]


def month_of(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m")


def last_complete_month(now: datetime, settings: Settings) -> str:
    first_of_month = now.astimezone(settings.tz).date().replace(day=1)
    return (first_of_month - timedelta(days=1)).strftime("%Y-%m")


#: Beyond the survey link's life, how long a call of the month may still be open before
#: it is cleared and surveyed (most are cleared within hours).
CLEARANCE_MARGIN = timedelta(days=7)


def settle_time(settings: Settings) -> timedelta:
    """How long after a month ends its answers can still come in."""
    return settings.policy.survey_after_clear + settings.policy.survey_expires + CLEARANCE_MARGIN


def last_settled_month(now: datetime, settings: Settings) -> str:
    """The last month whose survey answers are all in: the scheduled publication waits for
    it, so that a month's figures do not change from one publication to the next (two
    versions of a month could be subtracted to reveal the answers that came in between)."""
    return last_complete_month(now - settle_time(settings), settings)


def parse_month(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise PublishError(f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-03") from None


def _month_after(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def _months(first: str, last: str) -> list[str]:
    months, current, end = [], parse_month(first), parse_month(last)
    while current <= end:
        months.append(current.strftime("%Y-%m"))
        current = _month_after(current)
    return months


def scale_questions(definition: SurveyDefinition) -> list[QuestionInfo]:
    return [QuestionInfo(q.id, q.text["en"], q.text["fr"]) for q in definition.questions]


def make_publication(
    db: Database,
    settings: Settings,
    definition: SurveyDefinition,
    now: datetime,
    *,
    agency_id: str | None = None,
    through: str | None = None,
    progress: Progress | None = None,
) -> Publication:
    """The files of every local month up to ``through`` (default: the last complete one)."""
    agency = agency_id or settings.agency_id
    if agency != settings.agency_id:
        raise PublishError(
            f"unknown agency {agency!r}; the configured one is {settings.agency_id!r}"
        )
    current = month_of(now, settings)
    period = through or last_complete_month(now, settings)
    end_month = parse_month(period)
    if period > current:
        raise PublishError(f"{period} has not begun yet; name {current} or an earlier month")
    notify = progress or (lambda _step, _done, _total: None)
    notify("reading figures", 0, 1)
    rows = figures(
        db,
        Filters(
            agency_id=agency,
            start=_EPOCH,
            end=_month_after(end_month) - timedelta(days=1),
            priorities=tuple(settings.policy.priorities),
        ),
        settings.tz,
        group_by=("month", "district", "priority"),
    )
    notify("reading figures", 1, 1)
    questions = scale_questions(definition)
    cells = [
        CellFigures(
            month=str(row.month),
            district=row.district or UNKNOWN_DISTRICT,
            priority=int(row.priority),
            # int(): PostgreSQL's SUM is a Decimal, which neither JSON nor the
            # suppression's exact arithmetic wants.
            calls_texted=int(row.calls_texted),
            delay_notices=int(row.delay_notices_sent),
            surveys_sent=int(row.surveys_sent),
            responses=int(row.surveys_completed),
            tallies={
                q: Tally(int(t.answers), int(t.total), int(t.positive))
                for q, t in row.scores.items()
            },
        )
        for row in rows
        if row.priority is not None
        and (row.calls_texted or row.surveys_sent or row.surveys_completed)
    ]
    first = min((c.month for c in cells), default=period)
    months = _months(first, period)
    tables = build_tables(
        months,
        cells,
        [q.id for q in questions],
        settings.opendata.min_responses,
        on_month=lambda done: notify("suppressing small cells", done, len(months)),
    )
    info = PackageInfo(
        agency_id=agency,
        agency_name_en=settings.agency_name.en,
        agency_name_fr=settings.agency_name.fr,
        first_month=first,
        last_month=period,
        partial_month=period if period == current else None,
        min_responses=settings.opendata.min_responses,
        license_url=settings.opendata.license_url,
        license_title=settings.opendata.license_title,
        questions=questions,
    )
    files = build_files(info, tables, _boundaries(settings))
    notify("writing files", 1, 1)
    return Publication(agency, period, period == current, now, files)


def _boundaries(settings: Settings) -> Any:
    path = settings.opendata.districts_geojson
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PublishError(
            f"opendata.districts_geojson: cannot read {str(path)!r} as GeoJSON ({error})"
        ) from None


def write_folder(publication: Publication, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in publication.files.items():
        path = folder / name
        path.write_bytes(content)
        written.append(path)
    return written


def store(db: Database, publication: Publication) -> None:
    """Store (or replace) the agency's publication of its period."""
    with db.transaction() as session:
        row = session.scalars(
            select(PublicationRow).where(
                PublicationRow.agency_id == publication.agency_id,
                PublicationRow.period == publication.period,
            )
        ).one_or_none()
        if row is None:
            row = PublicationRow(
                agency_id=publication.agency_id,
                period=publication.period,
                partial=publication.partial,
                published_at=publication.published_at,
            )
            session.add(row)
            session.flush()
        else:
            row.partial = publication.partial
            row.published_at = publication.published_at
            session.query(PublicationFileRow).filter_by(publication_id=row.id).delete()
        _add_files(session, row.id, publication.files)


def _add_files(session: Any, publication_id: int, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        session.add(
            PublicationFileRow(
                publication_id=publication_id,
                name=name,
                content=content,
                sha256=hashlib.sha256(content).hexdigest(),
            )
        )


def publish_due(
    db: Database, settings: Settings, definition: SurveyDefinition, now: datetime
) -> Publication | None:
    """The scheduled publication: the last settled month (:func:`last_settled_month`), if
    nobody has published it whole yet. Several workers may call this at once; the claim
    (inserting the period's row, or turning a partial one whole) happens in the same
    transaction as the files, so exactly one of them publishes."""
    period = last_settled_month(now, settings)
    agency = settings.agency_id
    publication = make_publication(db, settings, definition, now, through=period)
    try:
        with db.transaction() as session:
            claimed = session.execute(
                update(PublicationRow)
                .where(
                    PublicationRow.agency_id == agency,
                    PublicationRow.period == period,
                    PublicationRow.partial.is_(True),
                )
                .values(partial=False, published_at=now)
                .returning(PublicationRow.id)
            ).scalar_one_or_none()
            if claimed is not None:
                session.query(PublicationFileRow).filter_by(publication_id=claimed).delete()
            else:
                row = PublicationRow(
                    agency_id=agency, period=period, partial=False, published_at=now
                )
                session.add(row)
                session.flush()  # a second worker's insert fails here: the month is taken
                claimed = row.id
            _add_files(session, claimed, publication.files)
    except IntegrityError:
        return None
    return publication


def is_published(db: Database, agency_id: str, period: str) -> bool:
    with db.transaction() as session:
        return (
            session.scalars(
                select(PublicationRow.id).where(
                    PublicationRow.agency_id == agency_id,
                    PublicationRow.period == period,
                    PublicationRow.partial.is_(False),
                )
            ).first()
            is not None
        )


@dataclass(frozen=True)
class StoredFile:
    name: str
    content: bytes
    sha256: str
    period: str
    partial: bool
    published_at: datetime


def latest_files(db: Database, agency_id: str) -> tuple[PublicationRow, list[str]] | None:
    """The agency's latest publication (the latest period) and its file names."""
    with db.transaction() as session:
        row = session.scalars(
            select(PublicationRow)
            .where(PublicationRow.agency_id == agency_id)
            .order_by(PublicationRow.period.desc())
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        names = session.scalars(
            select(PublicationFileRow.name).where(PublicationFileRow.publication_id == row.id)
        ).all()
        session.expunge(row)
        return row, list(names)


def latest_file(db: Database, agency_id: str, name: str) -> StoredFile | None:
    with db.transaction() as session:
        found = session.execute(
            select(PublicationFileRow, PublicationRow)
            .join(PublicationRow, PublicationRow.id == PublicationFileRow.publication_id)
            .where(PublicationRow.agency_id == agency_id)
            .order_by(PublicationRow.period.desc())
            .limit(1)
        ).first()
        if found is None:
            return None
        latest_id = found[1].id
        file_row = session.get(PublicationFileRow, (latest_id, name))
        if file_row is None:
            return None
        publication = found[1]
        return StoredFile(
            name,
            file_row.content,
            file_row.sha256,
            publication.period,
            publication.partial,
            publication.published_at,
        )
