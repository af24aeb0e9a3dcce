"""Survey responses with their comment, for the dashboard's comments page.

A response belongs to a call (its district, priority and call type), never to a phone:
no phone, case number or incident id is read here. The comment comes back as the caller
wrote it (decrypted): the page must redact it before showing it, and it is never
published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, SurveyAnswerRow, SurveyResponseRow
from callerconnect.queries.figures import call_conditions
from callerconnect.queries.filters import Filters


@dataclass(frozen=True)
class ResponseWithComment:
    response_id: int
    answered_at: datetime
    language: str
    channel: str
    district: str | None
    priority: int | None
    call_type: str | None
    #: Scale points by question id (1-5); a choice such as ``no_officer`` is in ``choices``.
    scores: Mapping[str, int]
    choices: Mapping[str, str]
    #: Unredacted: redact before showing to anyone.
    comment: str


def responses_with_comments(
    db: Database, vault: Vault, filters: Filters, tz: ZoneInfo, *, limit: int = 200
) -> list[ResponseWithComment]:
    """The latest ``limit`` responses with a comment, about the calls in scope (the
    figures' rule: a response counts with its call), newest first."""
    start, end = filters.utc_bounds(tz)
    query = (
        select(
            SurveyResponseRow.id,
            SurveyResponseRow.answered_at,
            SurveyResponseRow.language,
            SurveyResponseRow.channel,
            CallRow.district,
            CallRow.priority,
            CallRow.call_type_code,
            SurveyResponseRow.comment_encrypted,
        )
        .join(CallRow, SurveyResponseRow.call_id == CallRow.id)
        .where(
            *call_conditions(filters, start, end),
            SurveyResponseRow.comment_encrypted.is_not(None),
        )
        .order_by(SurveyResponseRow.answered_at.desc(), SurveyResponseRow.id.desc())
        .limit(limit)
    )
    with db.reading() as connection:
        responses = connection.execute(query).all()
        answers = connection.execute(
            select(
                SurveyAnswerRow.response_id,
                SurveyAnswerRow.question_id,
                SurveyAnswerRow.score,
                SurveyAnswerRow.choice,
            ).where(SurveyAnswerRow.response_id.in_([r.id for r in responses]))
        ).all()
    scores: dict[int, dict[str, int]] = {}
    choices: dict[int, dict[str, str]] = {}
    for response_id, question, score, choice in answers:
        if score is not None:
            scores.setdefault(response_id, {})[question] = score
        elif choice is not None:
            choices.setdefault(response_id, {})[question] = choice
    return [
        ResponseWithComment(
            response_id=row.id,
            answered_at=row.answered_at,
            language=row.language,
            channel=row.channel,
            district=row.district,
            priority=row.priority,
            call_type=row.call_type_code,
            scores=scores.get(row.id, {}),
            choices=choices.get(row.id, {}),
            comment=vault.decrypt(row.comment_encrypted),
        )
        for row in responses
    ]
