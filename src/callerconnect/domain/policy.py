"""Who may be texted: eligibility as data, and the re-check right before a send.

Every answer is a reason code, never a bare boolean, so that each decision can be
recorded and counted: ``eligible``, ``ineligible:priority``,
``excluded:intimate_partner_violence``, ``suppressed:stale`` ...

The order of the checks matters only for which reason is reported: the safety
conditions (merged, cancelled, risk flag, in progress, excluded type) come first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callerconnect.domain.calls import Call
from callerconnect.domain.case_numbers import DEFAULT_CASE_NUMBER_PATTERN
from callerconnect.domain.messages import QUIET_HOURS_KINDS, TextKind

ELIGIBLE = "eligible"


@dataclass(frozen=True)
class CallType:
    code: str
    description_en: str
    description_fr: str
    category: str
    textable: bool


class CallTypeTableError(ValueError):
    """The call-type table is unusable; ``line`` is the 1-based line of the CSV."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"call-type table line {line}: {message}")
        self.line = line


def normalize_call_type_code(code: str) -> str:
    return code.strip().upper()


def parse_call_types(rows: Iterable[Mapping[str, str | None]]) -> dict[str, CallType]:
    """Build the call-type table from CSV rows (``code, description_en, description_fr,
    category, textable``). ``textable`` must say ``yes`` or ``no``: anything else is an
    error rather than a guess, because a wrong guess could text an excluded call."""
    table: dict[str, CallType] = {}
    for line, row in enumerate(rows, start=2):
        code = normalize_call_type_code(row.get("code") or "")
        if not code:
            raise CallTypeTableError(line, "empty code")
        if code in table:
            raise CallTypeTableError(line, f"code {code!r} appears twice")
        textable = (row.get("textable") or "").strip().lower()
        if textable not in ("yes", "no"):
            raise CallTypeTableError(line, f"textable must be yes or no, not {textable!r}")
        category = (row.get("category") or "").strip()
        if not category:
            raise CallTypeTableError(line, "empty category")
        table[code] = CallType(
            code=code,
            description_en=(row.get("description_en") or "").strip(),
            description_fr=(row.get("description_fr") or "").strip(),
            category=category,
            textable=textable == "yes",
        )
    return table


_HHMM_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_hhmm(text: str) -> time | None:
    match = _HHMM_RE.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time during which delay notices and survey invitations
    wait: start inclusive, end exclusive; an end before the start wraps past midnight, as
    the default ``21:00-08:00`` does.

    The setting (``policy.quiet_hours``) is written ``HH:MM-HH:MM`` (:meth:`parse`,
    ``str()``) without a time zone, because the zone is the agency's own setting: the
    window read from the configuration has ``tz`` None, and bootstrap places it in the
    agency's zone (:meth:`in_zone`) when it builds the policy. A window is applied only
    with its zone; :class:`Policy` refuses one without, so quiet hours can never fall
    back to UTC. A window whose start is its end is empty (never quiet); written, it is
    refused as a mistake (``off`` is how a setting has no quiet hours).
    """

    start: time
    end: time
    tz: ZoneInfo | None = None

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``HH:MM-HH:MM`` (no zone yet); raises ValueError saying what was expected."""
        start_text, _, end_text = text.partition("-")
        start, end = _parse_hhmm(start_text), _parse_hhmm(end_text)
        if start is None or end is None:
            raise ValueError(
                f"{text!r} is not a window; write HH:MM-HH:MM, such as 21:00-08:00, or off"
            )
        return cls(start, end).written()

    def written(self) -> QuietHours:
        """This window, if it can be a setting: raises ValueError for an empty one."""
        if self.start == self.end:
            raise ValueError(
                "quiet hours start and end at the same time; write a window such as "
                "21:00-08:00, or off to disable them"
            )
        return self

    def in_zone(self, tz: ZoneInfo) -> QuietHours:
        """The same window in the agency's time zone ``tz``."""
        return replace(self, tz=tz)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def zone(self) -> ZoneInfo:
        if self.tz is None:
            raise ValueError(f"quiet hours {self} have no time zone; place them in_zone() first")
        return self.tz

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_end(self, moment: datetime) -> datetime:
        """The first moment at or after ``moment`` that is outside the window.

        Daylight-saving changes make the local end time happen twice (fall back: the
        window may be entered again in the repeated hour) or not at all (spring forward:
        the window ends when the clock jumps over it), so candidates are real instants.
        """
        if not self.contains(moment):
            return moment
        today = moment.astimezone(self.zone).date()
        candidates: list[datetime] = []
        # Up to two days ahead: on a spring-forward night a short gap outside the window
        # can vanish altogether, and the window then ends only the next day.
        for day in (today + timedelta(days=n) for n in (-1, 0, 1, 2)):
            first = datetime.combine(day, self.end, tzinfo=self.zone)
            second = first.replace(fold=1)
            early, late = first.astimezone(UTC), second.astimezone(UTC)
            if late < early:  # the end time does not exist that day: find the jump
                candidates.append(self._clock_reaches(day, late, early))
            else:
                candidates.extend({early, late})
        for candidate in sorted(candidates):
            if candidate > moment and not self.contains(candidate):
                return candidate.astimezone(moment.tzinfo)
        raise AssertionError("a quiet-hours window always ends within three days")

    def _clock_reaches(self, day: date, low: datetime, high: datetime) -> datetime:
        """The first instant in [low, high] whose local wall time on ``day`` is at or
        past the end time (to the second): where the spring-forward jump passes it."""
        target = datetime.combine(day, self.end)
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).replace(tzinfo=None) >= target:
                high = middle
            else:
                low = middle
        whole = high.replace(microsecond=0)
        return whole if whole == high else whole + timedelta(seconds=1)

    def shift(self, moment: datetime, kind: TextKind) -> datetime:
        return self.next_end(moment) if kind in QUIET_HOURS_KINDS else moment


@dataclass(frozen=True)
class Policy:
    priorities: frozenset[int]
    delay_notice_after: Mapping[int, timedelta]
    call_types: Mapping[str, CallType]
    survey_after_clear: timedelta = timedelta(minutes=15)
    quiet_hours: QuietHours | None = None
    survey_expires: timedelta = timedelta(days=7)
    max_texts_per_phone_per_day: int = 8
    # How long a number seen on a call that puts someone at risk gets no other texts.
    protect_number_for: timedelta = timedelta(days=90)
    # The agency's case numbers (intake.case_number_pattern): checked at intake and
    # again before a text quotes one (domain/case_numbers.py).
    case_number_pattern: str = DEFAULT_CASE_NUMBER_PATTERN
    # How late each kind may still go out before it is suppressed as stale.
    expires_after: Mapping[TextKind, timedelta] = field(
        default_factory=lambda: {
            TextKind.CONFIRMATION: timedelta(hours=12),
            TextKind.DELAY_NOTICE: timedelta(hours=4),
            TextKind.SURVEY_INVITATION: timedelta(days=2),
            TextKind.REPLY: timedelta(hours=1),
        }
    )

    def __post_init__(self) -> None:
        if self.quiet_hours is not None and self.quiet_hours.tz is None:
            raise ValueError(
                f"quiet hours {self.quiet_hours} have no time zone: a policy applies them "
                "in the agency's zone (QuietHours.in_zone)"
            )

    def call_type(self, code: str | None) -> CallType | None:
        if code is None:
            return None
        return self.call_types.get(normalize_call_type_code(code))

    def shift_out_of_quiet_hours(self, moment: datetime, kind: TextKind) -> datetime:
        return self.quiet_hours.shift(moment, kind) if self.quiet_hours else moment

    def in_quiet_hours(self, moment: datetime, kind: TextKind) -> bool:
        return (
            self.quiet_hours is not None
            and kind in QUIET_HOURS_KINDS
            and self.quiet_hours.contains(moment)
        )


# Reasons that never go away for an incident: once seen, the call is never texted again,
# whatever a later (or out-of-order) event says. A wrong "yes" could hurt someone; a
# wrong "no" costs one text.
def is_sticky(reason: str) -> bool:
    return reason.startswith(("excluded:", "held:")) or reason in _STICKY


_STICKY = frozenset(
    {
        "ineligible:merged",
        "ineligible:cancelled",
        "ineligible:risk_flag",
        "ineligible:in_progress",
        "ineligible:opted_out",
        # A danger that arrived after a benign value stamped later (lifecycle.decide).
        "ineligible:priority_out_of_order",
        "ineligible:call_type_out_of_order",
    }
)


# Calls that say the *person* behind the number may be at risk, not just this call:
# whoever holds that phone (an abuser reading it, say) must not see texts from the
# police about any other call either, for ``Policy.protect_number_for``.
_PROTECTIVE_CATEGORIES = frozenset({"sexual_assault", "intimate_partner_violence", "abduction"})


def is_stopping_danger(blocked_reason: str | None) -> bool:
    """The call was blocked for a danger about the incident itself: an excluded
    classification or a hold. Nothing milder replaces such a reason."""
    return (blocked_reason or "").startswith(("excluded:", "held:"))


def merge_carries_danger(call: Call, policy: Policy) -> bool:
    """Merged into another call, this one holds that call: it may not be texted for a
    reason about the incident itself (an exclusion, a risk flag, in progress, a hold)."""
    call_type = policy.call_type(call.call_type_code)
    return (
        call.risk_flag
        or call.in_progress
        or is_stopping_danger(call.blocked_reason)
        or (call_type is not None and not call_type.textable)
    )


def protects_the_number(call: Call, policy: Policy) -> str | None:
    """Why this call's number must get no other texts for a while, or None."""
    blocked = call.blocked_reason or ""
    if blocked.startswith("held:"):
        return blocked
    if call.risk_flag:
        return "ineligible:risk_flag"
    if blocked.startswith("excluded:") and blocked.split(":", 1)[1] in _PROTECTIVE_CATEGORIES:
        return blocked  # also when a newer classification has replaced it since
    call_type = policy.call_type(call.call_type_code)
    if call_type is not None and call_type.category in _PROTECTIVE_CATEGORIES:
        return f"excluded:{call_type.category}"
    return None


def eligibility(call: Call, policy: Policy) -> str:
    """``eligible`` or the first reason this call may not be texted."""
    if call.blocked_reason:
        return call.blocked_reason
    if call.merged_into is not None:
        return "ineligible:merged"
    if call.cancelled_at is not None:
        return "ineligible:cancelled"
    if call.risk_flag:
        return "ineligible:risk_flag"
    if call.in_progress:
        return "ineligible:in_progress"
    if call.call_type_code is not None:
        call_type = policy.call_type(call.call_type_code)
        if call_type is not None and not call_type.textable:
            return f"excluded:{call_type.category}"
    if call.priority is None:
        return "ineligible:no_priority"
    if call.priority not in policy.priorities:
        return "ineligible:priority"
    if call.call_type_code is None:
        return "ineligible:no_call_type"
    if policy.call_type(call.call_type_code) is None:
        return "ineligible:unknown_call_type"
    if call.caller_opted_out:
        return "ineligible:opted_out"
    if call.phone is None:
        return "ineligible:invalid_phone" if call.phone_invalid else "ineligible:no_phone"
    return ELIGIBLE


@dataclass(frozen=True)
class PhoneContext:
    """What the dispatcher knows about the phone beyond this call."""

    opted_out: bool
    texts_last_24h: int
    # Seen lately on a call that puts someone at risk (see ``protects_the_number``).
    protected: bool = False
    # Our own sender number.
    ours: bool = False


@dataclass(frozen=True)
class SendCheck:
    """The answer of the last re-check: send now, defer to ``retry_at``, or not at all."""

    reason: str
    retry_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.reason == ELIGIBLE


def check_before_send(
    call: Call,
    kind: TextKind,
    *,
    expires_at: datetime,
    phone: PhoneContext,
    policy: Policy,
    now: datetime,
) -> SendCheck:
    """The policy again, against the call as it is now, right before a text leaves."""
    reason = eligibility(call, policy)
    if reason != ELIGIBLE:
        return SendCheck(f"suppressed:{reason.split(':', 1)[1]}")
    stale = _stale_reason(call, kind)
    if stale:
        return SendCheck(stale)
    if now > expires_at:
        return SendCheck("suppressed:stale")
    if phone.opted_out:
        return SendCheck("suppressed:opted_out")
    if phone.protected:
        return SendCheck("suppressed:protected_number")
    if phone.ours:
        return SendCheck("suppressed:own_number")
    if phone.texts_last_24h >= policy.max_texts_per_phone_per_day:
        return SendCheck("suppressed:daily_cap")
    if policy.in_quiet_hours(now, kind):
        return SendCheck(
            "deferred:quiet_hours", retry_at=policy.shift_out_of_quiet_hours(now, kind)
        )
    return SendCheck(ELIGIBLE)


def _stale_reason(call: Call, kind: TextKind) -> str | None:
    """A text whose moment has passed is suppressed, not sent late."""
    if kind is TextKind.CONFIRMATION:
        if call.cleared_at is not None:
            return "suppressed:stale"
        if call.case_number is None:
            return "suppressed:no_case_number"
    if kind is TextKind.DELAY_NOTICE and (
        call.dispatched_at is not None or call.arrived_at is not None or call.cleared_at
    ):
        return "suppressed:stale"
    if kind is TextKind.SURVEY_INVITATION and call.cleared_at is None:
        return "suppressed:not_cleared"
    return None
