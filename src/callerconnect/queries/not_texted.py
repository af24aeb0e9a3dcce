"""Why calls were not texted: calls of the period with no text sent, by reason code."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, not_, select
from sqlalchemy.orm import aliased

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.domain.messages import CALL_TEXT_KINDS
from callerconnect.domain.policy import ELIGIBLE
from callerconnect.i18n.reasons import reason_label
from callerconnect.queries.figures import call_conditions
from callerconnect.queries.filters import Filters

_CALL_KINDS = [kind.value for kind in CALL_TEXT_KINDS]


@dataclass(frozen=True)
class NotTextedReason:
    code: str
    calls: int

    def label(self, language: str = "en") -> str:
        return reason_label(self.code, language)


def not_texted_reasons(db: Database, filters: Filters, tz: ZoneInfo) -> list[NotTextedReason]:
    """Calls in scope (the same rule as :func:`figures`) with no text sent, counted by
    reason, most frequent first. The reason is the call's own when it is not eligible
    (``ineligible:priority``, ``excluded:alarm``, ``held:...``); for an eligible call it
    is the reason of its latest text (``suppressed:stale``, or ``text:<status>`` for one
    waiting or failed), or ``eligible:no_text`` when it has none."""
    start, end = filters.utc_bounds(tz)
    text = aliased(OutboxRow)
    was_sent = (
        select(text.id)
        .where(text.call_id == CallRow.id, text.kind.in_(_CALL_KINDS), text.sent_at.is_not(None))
        .exists()
    )
    latest = aliased(OutboxRow)
    latest_text_reason = (
        select(func.coalesce(latest.reason, literal("text:") + latest.status))
        .where(latest.call_id == CallRow.id, latest.kind.in_(_CALL_KINDS))
        .order_by(latest.id.desc())
        .limit(1)
        .correlate(CallRow)
        .scalar_subquery()
    )
    reason = case(
        (CallRow.reason != ELIGIBLE, CallRow.reason),
        else_=func.coalesce(latest_text_reason, literal("eligible:no_text")),
    ).label("reason")
    query = (
        select(reason, func.count())
        .where(and_(*call_conditions(filters, start, end)), not_(was_sent))
        .group_by(reason)
        .order_by(func.count().desc(), reason)
    )
    with db.reading() as connection:
        return [NotTextedReason(code, calls) for code, calls in connection.execute(query)]
