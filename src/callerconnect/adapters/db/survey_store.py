"""Storage for the survey: invitations by token hash, responses, and the rate-limit
counters of the public pages. The only module that writes these tables.

Single use is enforced by the database, not by a read-then-write in Python:

- :func:`claim_invitation` is a conditional ``UPDATE ... WHERE answered_at IS NULL AND
  expires_at > now``; of two concurrent submissions exactly one sees ``rowcount == 1``
  (PostgreSQL re-evaluates the condition after the first commits; SQLite's
  ``BEGIN IMMEDIATE`` runs them one after the other);
- ``survey_responses.call_id`` is unique, so a call gets one response whatever the
  channel (survey link or landline page): :func:`add_response` reports the loser.

Opening a link is the public page read most often (a respondent reloads it, a surge
day's texts are opened at once), so :func:`link_state` answers everything the page
needs in one read-only statement, built once: no write, and so on SQLite no write lock,
unless the link is opened for the first time or the token is unknown. The page runs it
through :class:`LinkLookup`: compiled once, on a driver connection, outside a
transaction (compiled_read.py); on PostgreSQL the look-ups of the pages waiting on the
event loop are read in one statement (:class:`LinkLookupsTogether`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    DateTime,
    Integer,
    Select,
    Text,
    bindparam,
    column,
    delete,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.bulk_insert import json_value_encoder
from callerconnect.adapters.db.compiled_read import CompiledRead
from callerconnect.adapters.db.tables import (
    CallRow,
    SurveyAnswerRow,
    SurveyInvitationRow,
    SurveyResponseRow,
    WebRateHitRow,
)
from callerconnect.loop_groups import LoopGroups

__all__ = [
    "FEEDBACK_REASONS",
    "CallFacts",
    "LinkLookup",
    "LinkState",
    "accepts_feedback",
    "add_response",
    "claim_invitation",
    "find_landline_call",
    "has_response",
    "link_state",
    "mark_opened",
    "record_hit",
]

#: Eligibility reasons of a call that may be asked for feedback: the ones a survey text
#: could follow, and those that could not be texted only for want of a usable phone
#: (a landline, a withheld number) or because the caller opted out of texts.
FEEDBACK_REASONS = frozenset(
    {"eligible", "ineligible:no_phone", "ineligible:invalid_phone", "ineligible:opted_out"}
)
#: The one sticky reason that does not close a survey: opting out of texts is not
#: opting out of being heard.
_HARMLESS_BLOCK = "ineligible:opted_out"


class CallFacts(Protocol):
    """What :func:`accepts_feedback` reads of a call (a ``CallRow`` or a selected row)."""

    @property
    def reason(self) -> str: ...

    @property
    def blocked_reason(self) -> str | None: ...


def accepts_feedback(call: CallFacts, *, landline: bool) -> bool:
    """Whether a response about ``call`` may be stored.

    A call blocked for safety (excluded type, also after a reclassification; a risk flag;
    a crime in progress; merged or cancelled) never takes one, even through a link that
    was already sent. The landline page is stricter: only the reasons in
    :data:`FEEDBACK_REASONS`, so priorities outside the policy and unknown call types
    (which could be excluded ones not mapped yet) are refused too.
    """
    if call.blocked_reason not in (None, _HARMLESS_BLOCK):
        return False
    if call.reason.startswith("excluded:"):
        return False
    return call.reason in FEEDBACK_REASONS if landline else True


@dataclass(frozen=True)
class LinkState:
    """A survey link as its page sees it, read in one statement (:func:`link_state`)."""

    invitation_id: int
    call_id: int
    agency_id: str | None  # the call's agency: its page names it
    language: str | None
    expires_at: datetime
    opened: bool
    answered: bool  # the link was used, or the call has a response from either channel
    accepts_feedback: bool  # the call exists and may still be asked (never for safety)
    client_hits: int  # the client's counted guesses in the current window


def _link_state_select(
    token_hash: Any, bucket: Any, client_hash: Any, window_start: Any, *first: Any
) -> Select[Any]:
    """What :func:`link_state` reads, for the link whose token hash is ``token_hash``
    (a parameter, or a column of the keys of :data:`_LINK_STATES`), ``first`` columns
    selected before the link's own."""
    return (
        select(
            *first,
            SurveyInvitationRow.id,
            SurveyInvitationRow.call_id,
            SurveyInvitationRow.language,
            SurveyInvitationRow.expires_at,
            SurveyInvitationRow.opened_at,
            SurveyInvitationRow.answered_at,
            CallRow.agency_id,
            CallRow.reason,
            CallRow.blocked_reason,
            exists()
            .where(SurveyResponseRow.call_id == SurveyInvitationRow.call_id)
            .label("has_response"),
            select(WebRateHitRow.hits)
            .where(
                WebRateHitRow.bucket == bucket,
                WebRateHitRow.client_hash == client_hash,
                WebRateHitRow.window_start == window_start,
            )
            .scalar_subquery()
            .label("client_hits"),
        )
        .select_from(SurveyInvitationRow)
        .outerjoin(CallRow, CallRow.id == SurveyInvitationRow.call_id)
        .where(SurveyInvitationRow.token_hash == token_hash)
    )


_LINK_STATE = _link_state_select(
    bindparam("token_hash"),
    bindparam("bucket"),
    bindparam("client_hash"),
    bindparam("window_start"),
)

# Several look-ups in one statement (PostgreSQL): their keys as one JSON document, each
# numbered, read back into rows by the server; each link's row carries its key's number.
_LOOKUP_KEYS = (
    func.json_to_recordset(sql_cast(bindparam("keys", type_=Text), JSON))
    .table_valued(
        column("number", Integer),
        column("token_hash", Text),
        column("bucket", Text),
        column("client_hash", Text),
        column("window_start", DateTime(timezone=True)),
    )
    .render_derived(name="lookup_keys", with_types=True)
)
_LINK_STATES = _link_state_select(
    _LOOKUP_KEYS.c.token_hash,
    _LOOKUP_KEYS.c.bucket,
    _LOOKUP_KEYS.c.client_hash,
    _LOOKUP_KEYS.c.window_start,
    _LOOKUP_KEYS.c.number,
)


def link_state(
    connection: Connection | Session,
    token_hash: str,
    *,
    bucket: str,
    client_hash: str,
    window_start: datetime,
) -> LinkState | None:
    """The link with this token hash, its call's standing and the client's count of
    guesses in the window; None for an unknown token. Reads only, in the caller's
    transaction (a submission's)."""
    row = connection.execute(
        _LINK_STATE,
        {
            "token_hash": token_hash,
            "bucket": bucket,
            "client_hash": client_hash,
            "window_start": window_start,
        },
    ).one_or_none()
    return None if row is None else _link_of(row)


class LinkLookup:
    """:func:`link_state` for the pages that only show a link, outside any transaction:
    the statement compiled once and run on a pooled driver connection (compiled_read.py
    says why; on the survey page it was most of the look-up's CPU)."""

    def __init__(self, engine: Engine) -> None:
        self._read = CompiledRead(engine, _LINK_STATE)
        self._together = LinkLookupsTogether(engine)

    def __call__(
        self, token_hash: str, *, bucket: str, client_hash: str, window_start: datetime
    ) -> LinkState | None:
        row = self._read.one_or_none(_link_values(token_hash, bucket, client_hash, window_start))
        return None if row is None else _link_of(row)

    def in_line(
        self, token_hash: str, *, bucket: str, client_hash: str, window_start: datetime
    ) -> LinkState | None:
        """The same look-up on the running event loop's own connection (SQLite only)."""
        row = self._read.one_or_none_in_line(
            _link_values(token_hash, bucket, client_hash, window_start)
        )
        return None if row is None else _link_of(row)

    async def on_loop(
        self, token_hash: str, *, bucket: str, client_hash: str, window_start: datetime
    ) -> LinkState | None:
        """The same look-up on the running event loop (PostgreSQL only), read together
        with the look-ups of the other pages waiting (:class:`LinkLookupsTogether`)."""
        row = await self._together.look_up(
            _link_values(token_hash, bucket, client_hash, window_start)
        )
        return None if row is None else _link_of(row)


class LinkLookupsTogether:
    """Survey links looked up on the event loop (PostgreSQL), those of the pages waiting
    read in one statement.

    The loop's pages share one asynchronous connection, on which psycopg runs one
    statement at a time; with fifty clients a page's look-up waited behind the others',
    and each cost a round trip (on a machine at half speed, about 1.1 ms of ``serve``'s
    CPU a page on PostgreSQL against 0.65 on SQLite, and a p99 of 67 ms). Here a
    look-up that comes while another statement is out waits as a future; when the
    statement is back, every look-up waiting goes in the next one (at most
    :data:`MAX_KEYS`), its keys numbered in a JSON document (:data:`_LINK_STATES`), and
    each page gets the row of its number, or None, as alone. A failure of the statement
    is each waiting page's failure."""

    MAX_KEYS = 64

    def __init__(self, engine: Engine) -> None:
        self._read = CompiledRead(engine, _LINK_STATES)
        # In ISO 8601 with its offset, which the server reads as a timestamptz; a naive
        # time refused, as the column itself refuses one.
        self._window_start = json_value_encoder(
            WebRateHitRow.__table__.c.window_start, engine.dialect
        )
        self._groups: LoopGroups[dict[str, Any], Any] = LoopGroups(
            lambda waiting: min(len(waiting), self.MAX_KEYS)
        )

    async def look_up(self, values: Mapping[str, Any]) -> Any:
        """The row of ``values``' link, or None for an unknown token."""
        key = {
            "token_hash": values["token_hash"],
            "bucket": values["bucket"],
            "client_hash": values["client_hash"],
            "window_start": self._window_start(values["window_start"]),
        }
        # One group at a time on each event loop (each has its own connection).
        return await self._groups.submit(asyncio.get_running_loop(), key, self._read_group)

    async def _read_group(self, keys: list[dict[str, Any]]) -> list[Any]:
        """Each key's row, or None."""
        document = json.dumps([{"number": n, **key} for n, key in enumerate(keys)])
        rows = await self._read.all_on_loop({"keys": document})
        by_number = {row.number: row for row in rows}
        return [by_number.get(number) for number in range(len(keys))]


def _link_values(
    token_hash: str, bucket: str, client_hash: str, window_start: datetime
) -> dict[str, Any]:
    return {
        "token_hash": token_hash,
        "bucket": bucket,
        "client_hash": client_hash,
        "window_start": window_start,
    }


def _link_of(row: Any) -> LinkState:
    """The :class:`LinkState` of a row of ``_LINK_STATE``."""
    return LinkState(
        invitation_id=row.id,
        call_id=row.call_id,
        agency_id=row.agency_id,
        language=row.language,
        expires_at=row.expires_at,
        opened=row.opened_at is not None,
        answered=row.answered_at is not None or bool(row.has_response),
        # An invitation whose call is gone (it cannot be, by the foreign key) is closed.
        accepts_feedback=row.reason is not None and accepts_feedback(row, landline=False),
        client_hits=row.client_hits or 0,
    )


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def mark_opened(session: Session, invitation_id: int, now: datetime) -> bool:
    """Record the first opening only; True if this was it."""
    result = session.execute(
        update(SurveyInvitationRow)
        .where(SurveyInvitationRow.id == invitation_id, SurveyInvitationRow.opened_at.is_(None))
        .values(opened_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def claim_invitation(session: Session, invitation_id: int, now: datetime) -> bool:
    """Mark the invitation answered if it is still open; False if another submission
    got there first or it has expired meanwhile."""
    result = session.execute(
        update(SurveyInvitationRow)
        .where(
            SurveyInvitationRow.id == invitation_id,
            SurveyInvitationRow.answered_at.is_(None),
            SurveyInvitationRow.expires_at > now,
        )
        .values(
            answered_at=now,
            opened_at=func.coalesce(SurveyInvitationRow.opened_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def add_response(
    session: Session, response: SurveyResponseRow, answers: Mapping[str, int | str]
) -> bool:
    """Store a response and its answers; False (and nothing stored) if the call already
    has one."""
    try:
        with session.begin_nested():
            session.add(response)
            session.flush()
            for question_id, value in answers.items():
                session.add(
                    SurveyAnswerRow(
                        response_id=response.id,
                        question_id=question_id,
                        score=value if isinstance(value, int) else None,
                        choice=value if isinstance(value, str) else None,
                    )
                )
            session.flush()
    except IntegrityError:
        return False
    return True


def has_response(session: Session, call_id: int) -> bool:
    found = session.scalar(select(SurveyResponseRow.id).where(SurveyResponseRow.call_id == call_id))
    return found is not None


def find_landline_call(
    session: Session, agency_id: str, case_number: str, cleared_since: datetime
) -> CallRow | None:
    """The most recently cleared call of the agency with this case number, cleared since
    ``cleared_since``, that accepts landline feedback and has no response yet. (No upper
    bound: a CAD clock slightly ahead of ours must not lose the feedback.)"""
    rows = session.scalars(
        select(CallRow)
        .where(
            CallRow.agency_id == agency_id,
            func.upper(CallRow.case_number) == case_number,
            CallRow.cleared_at.is_not(None),
            CallRow.cleared_at >= cleared_since,
        )
        .order_by(CallRow.cleared_at.desc())
        .limit(20)
    ).all()
    for row in rows:
        if not accepts_feedback(row, landline=True):
            continue
        if not has_response(session, row.id):
            return row
    return None


# --- rate limits ------------------------------------------------------------------------


def record_hit(
    session: Session,
    bucket: str,
    client_hash: str,
    window_start: datetime,
    *,
    forget_before: datetime,
) -> int:
    """Count one hit in the window and return the window's count, this hit included.

    One statement (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``) counts and
    answers, so the caller decides on the count it made: of concurrent hits each gets
    its own number (PostgreSQL locks the row until the transaction ends; SQLite's
    ``BEGIN IMMEDIATE`` runs them one after the other). Reading the count first and
    adding to it later let every concurrent hit read the same old count.

    Windows of the bucket that ended before ``forget_before`` are deleted on the way,
    skipping rows another transaction is deleting (so two cannot deadlock on them),
    and the table holds only what the limits still need."""
    stale = (
        select(WebRateHitRow.bucket, WebRateHitRow.client_hash, WebRateHitRow.window_start)
        .where(WebRateHitRow.bucket == bucket, WebRateHitRow.window_start < forget_before)
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(WebRateHitRow).where(
            tuple_(WebRateHitRow.bucket, WebRateHitRow.client_hash, WebRateHitRow.window_start).in_(
                stale
            )
        )
    )
    values = {"bucket": bucket, "client_hash": client_hash, "window_start": window_start, "hits": 1}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(WebRateHitRow)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["bucket", "client_hash", "window_start"],
            set_={"hits": WebRateHitRow.hits + 1},
        )
        .returning(WebRateHitRow.hits)
    )
    return int(session.execute(statement).scalar_one())
