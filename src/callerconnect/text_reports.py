"""The read side as plain text for an operator's terminal: ``calls show`` and
``report daily``. Everything comes from ``callerconnect.queries``; nothing here reads the
database itself. Times are shown in the agency's local time; phones only masked."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.i18n.reasons import reason_label
from callerconnect.queries.calls import CallHistory, call_history
from callerconnect.queries.figures import figures
from callerconnect.queries.filters import Filters
from callerconnect.queries.not_texted import not_texted_reasons
from callerconnect.queries.outcomes import texts_by_outcome_in
from callerconnect.queries.queues import (
    dead_letters,
    failed_texts,
    flagged_replies,
    unknown_call_types,
)


def _at(moment: datetime | None, tz: ZoneInfo) -> str:
    return "-" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _reason(code: str | None) -> str:
    if code is None:
        return "-"
    label = reason_label(code)
    return code if label == code else f"{code} \N{EM DASH} {label}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def show_call(
    db: Database, vault: Vault, agency_id: str, incident_id: str, tz: ZoneInfo, now: datetime
) -> str | None:
    """The whole story of one call as text, or ``None`` if the agency has no such call."""
    history = call_history(db, vault, agency_id, incident_id, now)
    return None if history is None else render_call(history, tz)


def render_call(call: CallHistory, tz: ZoneInfo) -> str:
    kind = call.call_type_code or "-"
    if call.call_type_description:
        kind += f" ({call.call_type_description})"
    lines = [
        f"Call {call.incident_id} (agency {call.agency_id})",
        f"  case number {call.case_number or '-'}, priority {call.priority or '-'}, "
        f"type {kind}, district {call.district or '-'}, unit {call.unit_id or '-'}",
        f"  phone {call.phone_masked or '-'}, language {call.language or '-'}",
        f"  now: {_reason(call.reason)}"
        + (f"; blocked for good: {_reason(call.blocked_reason)}" if call.blocked_reason else ""),
        f"  first event {_at(call.first_event_at, tz)}, received {_at(call.received_at, tz)}",
        f"  eligible {_at(call.eligible_at, tz)}, dispatched {_at(call.dispatched_at, tz)}, "
        f"cleared {_at(call.cleared_at, tz)}",
        "",
        "Events (in the order received)",
    ]
    for event in call.events:
        lines.append(
            f"  received {_at(event.received_at, tz)}  occurred {_at(event.occurred_at, tz)}  "
            f"{event.type}  [{event.event_id}, {event.source}]"
        )
        if event.fields is None:
            lines.append("      (the stored event could not be read back)")
        elif event.fields:
            lines.append("      " + " ".join(f"{name}={value}" for name, value in event.fields))
    lines += ["", "Decisions"]
    for decision in call.decisions:
        on = f" ({decision.kind})" if decision.kind else ""
        lines.append(f"  {_at(decision.decided_at, tz)}  {_reason(decision.code)}{on}")
    if not call.decisions:
        lines.append("  none")
    lines += ["", "Texts"]
    for text in call.texts:
        error = f", error {text.error_code}" if text.error_code else ""
        lines.append(
            f"  #{text.id} {text.kind}: {text.status}, reason {_reason(text.reason)}, "
            f"attempts {text.attempts}{error}"
        )
        for change in text.changes:
            why = f" ({_reason(change.reason)})" if change.reason else ""
            lines.append(f"      {_at(change.at, tz)}  {change.status}{why}")
    if not call.texts:
        lines.append("  none")
    lines += [""]
    survey = call.survey
    if survey is None:
        lines.append("Survey: none")
    else:
        lines.append(
            f"Survey: {survey.state}"
            + (f" (by {survey.channel})" if survey.channel else "")
            + f"; invited {_at(survey.invited_at, tz)}, opened {_at(survey.opened_at, tz)}, "
            f"answered {_at(survey.answered_at, tz)}, link expires {_at(survey.expires_at, tz)}"
        )
    return "\n".join(lines)


#: The queries a daily report runs, for ``on_progress(done, DAILY_REPORT_STEPS)``.
DAILY_REPORT_STEPS = 7


def daily_report(
    db: Database,
    vault: Vault,
    agency_id: str,
    day: date,
    tz: ZoneInfo,
    on_progress: Callable[[int, int], object] | None = None,
) -> str:
    """One local day of the agency: its calls (and their texts, surveys and opt-outs,
    which count with their call), why calls were not texted, and what needs a person.
    ``on_progress(done, total)`` is told after each of its queries (a long day of a
    large agency takes a while)."""
    steps = iter(range(1, DAILY_REPORT_STEPS + 1))

    def step() -> None:
        if on_progress is not None:
            on_progress(next(steps), DAILY_REPORT_STEPS)

    scope = Filters(agency_id, day, day)
    (total,) = figures(db, scope, tz, group_by=())
    step()
    lines = [
        f"Daily report for {day.isoformat()} (agency {agency_id}, {tz.key})",
        "",
        f"Calls: {total.calls_received} received, {total.calls_eligible} eligible, "
        f"{total.calls_texted} texted",
        f"Texts about them: {total.texts_sent} sent ({total.confirmations_sent} confirmations, "
        f"{total.delay_notices_sent} delay notices, {total.surveys_sent} surveys), "
        f"{total.texts_delivered} delivered, {total.texts_failed} failed",
        f"Time to confirmation: median {_seconds(total.median_seconds_to_confirmation)}, "
        f"90th percentile {_seconds(total.p90_seconds_to_confirmation)}",
        f"Surveys: {total.surveys_sent} sent, {total.surveys_opened} opened, "
        f"{total.surveys_completed} completed",
        f"Opt-outs (STOP replies to these calls' texts): {total.opt_outs}",
        "",
        "Texts by outcome",
    ]
    lines += _counted(
        (o.texts, f"{o.kind} {o.status}" + (f" ({_reason(o.reason)})" if o.reason else ""))
        for o in texts_by_outcome_in(db, scope, tz)
    )
    step()
    lines += ["", "Calls not texted, by reason"]
    lines += _counted((r.calls, _reason(r.code)) for r in not_texted_reasons(db, scope, tz))
    step()

    lines += ["", "Needs a person"]
    flagged = flagged_replies(db, vault, agency_id)
    step()
    lines.append(f"  Replies flagged for a person, not reviewed: {len(flagged)}")
    lines += [f"    #{r.id} {_at(r.received_at, tz)} {r.phone_masked} [{r.terms}]" for r in flagged]
    unknown = unknown_call_types(db, agency_id)
    step()
    lines.append(f"  Unknown call types to map: {len(unknown)}")
    lines += [f"    {u.code} ({u.calls} calls, last {_at(u.last_seen, tz)})" for u in unknown]
    letters = dead_letters(db, agency_id)
    step()
    lines.append(f"  Dead letters waiting: {len(letters)}")
    lines += [
        f"    #{d.id} {_at(d.received_at, tz)} {d.error_code}"
        + (f" at {d.field}" if d.field else "")
        for d in letters
    ]
    failed = failed_texts(db, scope, tz)
    step()
    lines.append(f"  Failed texts about the day's calls: {len(failed)}")
    lines += [
        f"    #{t.id} {t.incident_id} {t.kind} {t.status}"
        + (f" ({t.error_code})" if t.error_code else "")
        for t in failed
    ]
    return "\n".join(lines)


def _counted(rows: Iterable[tuple[int, str]]) -> list[str]:
    lines = [f"  {count:>6}  {label}" for count, label in rows]
    return lines or ["  none"]
