"""Survey responses with a comment, for the dashboard's comments page.

The comment is returned as stored (encrypted); the caller decrypts and redacts it, so
this module never holds a readable comment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, SurveyAnswerRow, SurveyResponseRow
from callerconnect.queries.figures import SCALE_QUESTIONS, call_conditions
from callerconnect.queries.filters import Filters


@dataclass(frozen=True)
class StoredComment:
    response_id: int
    answered_at: datetime
    language: str
    district: str | None
    priority: int | None
    call_type: str | None
    comment_encrypted: str
    scores: Mapping[str, int]


def comments(
    db: Database, filters: Filters, tz: ZoneInfo, *, limit: int = 500
) -> list[StoredComment]:
    """Responses with a comment on calls in scope (the figures' rule), newest first,
    with their scale answers."""
    start, end = filters.utc_bounds(tz)
    query = (
        select(
            SurveyResponseRow.id,
            SurveyResponseRow.answered_at,
            SurveyResponseRow.language,
            CallRow.district,
            CallRow.priority,
            CallRow.call_type_code,
            SurveyResponseRow.comment_encrypted,
        )
        .join(CallRow, CallRow.id == SurveyResponseRow.call_id)
        .where(
            *call_conditions(filters, start, end),
            SurveyResponseRow.agency_id == filters.agency_id,
            SurveyResponseRow.comment_encrypted.is_not(None),
        )
        .order_by(SurveyResponseRow.answered_at.desc(), SurveyResponseRow.id.desc())
        .limit(limit)
    )
    with db.transaction() as session:
        rows = list(session.execute(query))
        ids = [row[0] for row in rows]
        scores: dict[int, dict[str, int]] = {}
        if ids:
            answers = select(
                SurveyAnswerRow.response_id, SurveyAnswerRow.question_id, SurveyAnswerRow.score
            ).where(
                SurveyAnswerRow.response_id.in_(ids),
                SurveyAnswerRow.question_id.in_(SCALE_QUESTIONS),
                SurveyAnswerRow.score.is_not(None),
            )
            for response_id, question, score in session.execute(answers):
                if score is not None:
                    scores.setdefault(response_id, {})[question] = int(score)
    return [
        StoredComment(
            response_id=row[0],
            answered_at=row[1],
            language=row[2],
            district=row[3],
            priority=row[4],
            call_type=row[5],
            comment_encrypted=row[6] or "",
            scores=scores.get(row[0], {}),
        )
        for row in rows
    ]
