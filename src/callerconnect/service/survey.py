"""Survey handlers: open a link, submit a response, give feedback by case number.

Each handler is one unit of work: open a transaction, load, apply the domain rules,
save, commit. The web layer turns each outcome into a page; nothing here knows HTTP.

Rate limits live in the database (``web_rate_hits``), not in process memory, so that
every ``serve`` process behind a load balancer shares them and a restart does not reset
them. A guess (an unknown survey token) or a landline attempt costs one small upsert
that counts and reads in one statement, so the limits are exact under concurrency on
both databases. A real token costs no write: its look-up reads the client's count in
the same statement and answers "too many attempts" exactly when a guess would (a
limited client learns nothing, not even from a real token). Windows are fixed
(``window_start`` = the clock floored to the window length), read from the injected
clock, so tests step through them exactly.

Opening a link is one read-only statement outside any transaction
(``survey_store.LinkLookup``); only its first opening writes ``opened_at``. On SQLite a
read takes no write lock, so the survey pages do not queue behind each other or behind
the intake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerconnect.adapters.crypto import Vault, token_hash
from callerconnect.adapters.db import survey_store as store
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.survey_store import LinkState
from callerconnect.adapters.db.tables import CallRow, SurveyResponseRow
from callerconnect.clock import Clock
from callerconnect.domain.redaction import redact
from callerconnect.domain.survey import Answers, SurveyDefinition, parse_definition
from callerconnect.logs import log_event
from callerconnect.service.agencies import Agency

log = logging.getLogger("callerconnect.survey")

DEFAULT_DEFINITION = "survey-v1.json"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_definition(name: str = DEFAULT_DEFINITION) -> SurveyDefinition:
    """The bundled survey definition ``callerconnect/data/<name>``."""
    text = (resources.files("callerconnect.data") / name).read_text(encoding="utf-8")
    return parse_definition(json.loads(text))


class Channel(StrEnum):
    LINK = "link"
    LANDLINE = "landline"


class LinkStatus(StrEnum):
    """What a survey link leads to."""

    OPEN = "open"
    UNKNOWN = "unknown"  # no such token (404)
    ANSWERED = "answered"  # used already, or the call has a response (409)
    CLOSED = "closed"  # expired, or the call may no longer be surveyed (410)
    LIMITED = "limited"  # this client guessed too many tokens (429)
    RECORDED = "recorded"  # a submission was stored


@dataclass(frozen=True)
class LinkOutcome:
    status: LinkStatus
    language: str | None = None
    """The invitation's language (the caller's, from the CAD), when the link is known."""
    agency_id: str | None = None
    """The agency whose call the link is for, when the link is known: its page names it."""


class LandlineStatus(StrEnum):
    # One status for "recorded" and "no such recent call": the page must not tell them apart.
    RECEIVED = "received"
    LIMITED = "limited"


@dataclass(frozen=True)
class RateLimit:
    hits: int
    window: timedelta

    def window_start(self, now: datetime) -> datetime:
        seconds = self.window.total_seconds()
        elapsed = (now - _EPOCH).total_seconds()
        return _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


@dataclass(frozen=True)
class SurveyLimits:
    # Unknown survey tokens per client: a mistyped link is rare, and 128 random bits are
    # not guessable anyway; this stops a scanner from even trying at speed.
    token_guesses: RateLimit = field(default_factory=lambda: RateLimit(20, timedelta(minutes=1)))
    # Landline feedback attempts per client: case numbers are short and sequential, so
    # this is the limit that matters.
    landline_attempts: RateLimit = field(default_factory=lambda: RateLimit(10, timedelta(hours=1)))


TOKEN_BUCKET = "survey_token"
LANDLINE_BUCKET = "landline_feedback"


class SurveyService:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        definition: SurveyDefinition,
        *,
        client_key: bytes,
        limits: SurveyLimits | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.definition = definition
        self.limits = limits or SurveyLimits()
        self._client_key = client_key
        self._links = store.LinkLookup(db.engine)

    # --- survey links ----------------------------------------------------------------

    def open(self, token: str, client: str) -> LinkOutcome:
        """Look a link up for display; records when it was first opened."""
        return self._seen_now(token, client, opening=True) or self.recorded(
            token, client, opening=True
        )

    def check(self, token: str, client: str) -> LinkOutcome:
        """Like :meth:`open`, without recording an opening (form re-renders)."""
        return self._seen_now(token, client, opening=False) or self.recorded(
            token, client, opening=False
        )

    def seen_in_line(self, token: str, client: str, *, opening: bool) -> LinkOutcome | None:
        """The link's outcome when one read-only statement tells it; None when the page
        must write as well (an unknown token, whose guess is counted; a first opening),
        which :meth:`recorded` then does. On SQLite, run on the event loop (its own
        connection; a WAL read waits for no writer)."""
        now = self.clock.now()
        query = self._link_query(token, client, now)
        link = None if query is None else self._links.in_line(**query)
        return self._seen(link, now, opening)

    async def seen_on_loop(self, token: str, client: str, *, opening: bool) -> LinkOutcome | None:
        """:meth:`seen_in_line` on the running event loop, for PostgreSQL (its round trip
        awaited, not waited for in a thread)."""
        now = self.clock.now()
        query = self._link_query(token, client, now)
        link = None if query is None else await self._links.on_loop(**query)
        return self._seen(link, now, opening)

    def _seen_now(self, token: str, client: str, *, opening: bool) -> LinkOutcome | None:
        """:meth:`seen_in_line`'s answer from any thread (on a pooled connection)."""
        now = self.clock.now()
        return self._seen(self._known_link(token, client, now), now, opening)

    def _seen(self, link: LinkState | None, now: datetime, opening: bool) -> LinkOutcome | None:
        if link is None:
            return None
        outcome = self._judge(link, now)
        if opening and outcome.status is LinkStatus.OPEN and not link.opened:
            return None
        return outcome

    def recorded(self, token: str, client: str, *, opening: bool) -> LinkOutcome:
        """The link's outcome with the writes :meth:`seen` left: the guess counted for
        an unknown token, the first opening recorded (``opening``)."""
        now = self.clock.now()
        link = self._known_link(token, client, now)
        if link is None:
            with self.db.transaction() as session:
                return self._guess(session, self._client_hash(client), self._window(now))
        outcome = self._judge(link, now)
        if opening and outcome.status is LinkStatus.OPEN and not link.opened:
            with self.db.transaction() as session:
                if store.mark_opened(session, link.invitation_id, now):
                    log_event(log, "survey_opened", invitation_id=link.invitation_id)
        return outcome

    def submit(self, token: str, answers: Answers, language: str, client: str) -> LinkOutcome:
        """Store a response once. Validate ``answers`` before calling (the domain's
        :func:`read_answers`); an empty one is refused here too."""
        if answers.empty:
            raise ValueError("a response needs at least one answer")
        now = self.clock.now()
        with self.db.transaction() as session:
            outcome, link = self._resolve(session, token, client, now)
            if outcome.status is not LinkStatus.OPEN or link is None:
                return outcome
            if not store.claim_invitation(session, link.invitation_id, now):
                return replace(outcome, status=LinkStatus.ANSWERED)
            recorded = store.add_response(
                session,
                self._response(
                    session, link.call_id, link.invitation_id, Channel.LINK, language, answers
                ),
                answers.values,
            )
        if not recorded:  # the call was answered from the landline page meanwhile
            return replace(outcome, status=LinkStatus.ANSWERED)
        log_event(log, "survey_answered", invitation_id=link.invitation_id, channel=Channel.LINK)
        return replace(outcome, status=LinkStatus.RECORDED)

    def _known_link(self, token: str, client: str, now: datetime) -> LinkState | None:
        """The link of a well-formed, known ``token`` (with ``client``'s guesses in the
        current window), in one read-only statement; None for any other token."""
        query = self._link_query(token, client, now)
        return None if query is None else self._links(**query)

    def _link_query(self, token: str, client: str, now: datetime) -> dict[str, Any] | None:
        """What the look-up of ``token`` asks (None for a token that is not well formed)."""
        if not _TOKEN.fullmatch(token):
            return None
        return {
            "token_hash": token_hash(token),
            "bucket": TOKEN_BUCKET,
            "client_hash": self._client_hash(client),
            "window_start": self._window(now),
        }

    def _window(self, now: datetime) -> datetime:
        return self.limits.token_guesses.window_start(now)

    def _resolve(
        self, session: Session, token: str, client: str, now: datetime
    ) -> tuple[LinkOutcome, LinkState | None]:
        """The link's outcome inside ``session``'s transaction (a submission's)."""
        client_hash = self._client_hash(client)
        window = self.limits.token_guesses.window_start(now)
        link = (
            store.link_state(
                session,
                token_hash(token),
                bucket=TOKEN_BUCKET,
                client_hash=client_hash,
                window_start=window,
            )
            if _TOKEN.fullmatch(token)
            else None
        )
        if link is None:
            return self._guess(session, client_hash, window), None
        return self._judge(link, now), link

    def _guess(self, session: Session, client_hash: str, window: datetime) -> LinkOutcome:
        """An unknown token: counted (one statement that counts and answers, so
        concurrent guesses each get their own count), then refused."""
        limit = self.limits.token_guesses
        hits = store.record_hit(
            session, TOKEN_BUCKET, client_hash, window, forget_before=window - limit.window
        )
        if hits > limit.hits:
            return LinkOutcome(LinkStatus.LIMITED)
        log_event(log, "survey_token_unknown", level=logging.WARNING, hits=hits)
        return LinkOutcome(LinkStatus.UNKNOWN)

    def _judge(self, link: LinkState, now: datetime) -> LinkOutcome:
        """What a known link leads to. A client over its limit of guesses gets the same
        answer as for one more guess, so a real token is not told from a miss."""
        if link.client_hits >= self.limits.token_guesses.hits:
            return LinkOutcome(LinkStatus.LIMITED)
        if link.answered:
            return LinkOutcome(LinkStatus.ANSWERED, link.language, link.agency_id)
        if now >= link.expires_at or not link.accepts_feedback:
            return LinkOutcome(LinkStatus.CLOSED, link.language, link.agency_id)
        return LinkOutcome(LinkStatus.OPEN, link.language, link.agency_id)

    # --- landline page ---------------------------------------------------------------

    def landline(
        self,
        agency: Agency,
        case_number: str,
        answers: Answers,
        language: str,
        client: str,
    ) -> LandlineStatus:
        """Record feedback for a recently cleared, surveyable call of ``agency`` with this
        (normalized) case number, if there is one without a response. The answer is the
        same either way: this page must not reveal whether a case number exists. Case
        numbers are an agency's own, so another agency's call is never found."""
        if answers.empty:
            raise ValueError("a response needs at least one answer")
        now = self.clock.now()
        limit = self.limits.landline_attempts
        window = limit.window_start(now)
        client_hash = self._client_hash(client)
        with self.db.transaction() as session:
            # Counted and compared in one statement: concurrent attempts cannot all
            # read the same count and all pass.
            hits = store.record_hit(
                session, LANDLINE_BUCKET, client_hash, window, forget_before=window - limit.window
            )
            if hits > limit.hits:
                return LandlineStatus.LIMITED
            call = store.find_landline_call(
                session, agency.id, case_number, now - agency.policy.survey_expires
            )
            recorded = call is not None and store.add_response(
                session,
                self._response(session, call.id, None, Channel.LANDLINE, language, answers),
                answers.values,
            )
        log_event(log, "landline_feedback", recorded=recorded)
        return LandlineStatus.RECEIVED

    # --- helpers ---------------------------------------------------------------------

    def _response(
        self,
        session: Session,
        call_id: int,
        invitation_id: int | None,
        channel: Channel,
        language: str,
        answers: Answers,
    ) -> SurveyResponseRow:
        return SurveyResponseRow(
            # The call's agency: a survey link answers for the agency that sent it.
            agency_id=session.scalar(select(CallRow.agency_id).where(CallRow.id == call_id)),
            call_id=call_id,
            invitation_id=invitation_id,
            channel=channel.value,
            survey_version=self.definition.version,
            language=language,
            answered_at=self.clock.now(),
            comment_encrypted=self._stored_comment(answers.comment),
        )

    def _stored_comment(self, comment: str | None) -> str | None:
        """Only the redacted comment is kept, and it is still encrypted: redaction is
        automatic and can miss something. The clear text is never written anywhere
        (docs/survey.md, "What is stored")."""
        if not comment:
            return None
        return self.vault.encrypt(redact(comment))

    def _client_hash(self, client: str) -> str:
        """A keyed hash of the client's address: enough to count, useless to anyone
        reading the table."""
        return hmac.new(self._client_key, client.encode(), hashlib.sha256).hexdigest()
