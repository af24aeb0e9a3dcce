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
transaction (compiled_read.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    bindparam,
    delete,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.compiled_read import CompiledRead
from callerconnect.adapters.db.tables import (
    CallRow,
    SurveyAnswerRow,
    SurveyInvitationRow,
    SurveyResponseRow,
    WebRateHitRow,
)

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


_LINK_STATE = (
    select(
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
            WebRateHitRow.bucket == bindparam("bucket"),
            WebRateHitRow.client_hash == bindparam("client_hash"),
            WebRateHitRow.window_start == bindparam("window_start"),
        )
        .scalar_subquery()
        .label("client_hits"),
    )
    .select_from(SurveyInvitationRow)
    .outerjoin(CallRow, CallRow.id == SurveyInvitationRow.call_id)
    .where(SurveyInvitationRow.token_hash == bindparam("token_hash"))
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
        """The same look-up on the running event loop (PostgreSQL only)."""
        row = await self._read.one_or_none_on_loop(
            _link_values(token_hash, bucket, client_hash, window_start)
        )
        return None if row is None else _link_of(row)


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
