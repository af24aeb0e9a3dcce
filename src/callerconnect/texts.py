"""The texts a caller can receive (contract section 5), rendered in their language.

Wording lives in the gettext catalogs (``callerconnect/i18n/locale``); the msgids
below are the English texts, marked with :func:`_n` so ``pybabel extract -k _n``
finds them. Each text is one SMS and is measured by :class:`SmsText`.

Layout, the same in every language::

    <English sentence(s)>            single language: just this line, in that language
    <French sentence(s)>             bilingual only: English first, then French
    <language-neutral last line>     survey link, or the delay notice's case number

A value that reads the same in both languages and is long (the survey link, the
case number of a delay notice) is written once, on the last line, instead of once
per half: that is what keeps a bilingual text within two GSM-7 segments with a
32-character case number. The confirmation keeps its case number inside each half
because the number is what that text is for, and both halves still fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

from callerconnect.domain.case_numbers import (
    DEFAULT_CASE_NUMBER_PATTERN,
    matches_case_number_pattern,
)
from callerconnect.domain.sms_encoding import SmsText
from callerconnect.i18n import translator

__all__ = [
    "AGENCY_PATTERN_RULE",
    "BILINGUAL",
    "CASE_NUMBER_RULE",
    "CASE_NUMBER_SCHEMA",
    "DEFAULT_NON_EMERGENCY_NUMBER",
    "MAX_CASE_NUMBER",
    "WHITE_SPACE",
    "TextKind",
    "UnquotableCaseNumber",
    "accepted_case_number",
    "quotable_case_number",
    "render_text",
]

BILINGUAL = "en+fr"
"""``SmsText.language`` of a text written in English then French."""

DEFAULT_NON_EMERGENCY_NUMBER = "613-236-1222"

# Languages a caller can be texted in on their own; anything else gets both.
_SINGLE_LANGUAGES = ("en", "fr")
# Between the halves and before the last line. A line feed is one GSM-7 septet,
# cheaper than " / " and easier to read on a phone.
_LINE_BREAK = "\n"


class UnquotableCaseNumber(ValueError):
    """A confirmation whose case number the text may not quote (see below)."""


# --- case numbers ---------------------------------------------------------------------
#
# The case number is the one value from outside that a text quotes, so it must not be
# able to change what the text is: no link (the contract allows none but the survey
# link, and phones turn "evil.co/x" or "1.2.3.4" into one), no line break or words
# that read as an instruction on a line of their own, nothing outside the GSM-7 basic
# alphabet (one en dash or emoji makes the whole text UCS-2, 70 characters a segment).
# Rule: 1 to 32 ASCII letters and digits in runs joined by single '-', '/', '.' or
# spaces, with at least one digit; a '.' only between two digits and at most two of
# them (a dotted quad reads as an IP address). Every allowed character is one GSM-7
# septet, so the 32-character worst case the segment tests prove (tests/unit/
# test_texts.py, LONG_CASE) bounds every quotable case number. Unicode dashes
# (en dash, minus sign...) are read as '-', since CAD exports produce them innocently.

MAX_CASE_NUMBER = 32
CASE_NUMBER_RULE = (
    f"must be 1 to {MAX_CASE_NUMBER} letters (A-Z) and digits with at least one digit, "
    "joined by single '-', '/', '.' or spaces ('.' only between two digits, at most two)"
)

#: The characters ``str.strip()`` removes (``str.isspace``), spelled out so that the
#: intake's JSON Schema can say exactly the same thing as the code (ECMA-262's ``\s``,
#: which other validators use, is a different set).
WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_DASH_CHARACTERS = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASHES = str.maketrans(dict.fromkeys(_DASH_CHARACTERS, "-"))
_RUN = "[A-Za-z0-9]+"
_CASE_NUMBER = re.compile(f"{_RUN}(?:[-/. ]{_RUN})*")

#: The rule as JSON Schema (each pattern is searched, as JSON Schema does), for the
#: intake's ``cad-event.schema.json``, which must say the same: it is checked in
#: tests/unit/test_native_parsing.py. Surrounding white space and Unicode dashes are
#: allowed there because they are normalised away.
CASE_NUMBER_SCHEMA: dict[str, object] = {
    "allOf": [
        {
            "pattern": f"^[{WHITE_SPACE}]*{_RUN}(?:[-/. {_DASH_CHARACTERS}]{_RUN})*"
            f"[{WHITE_SPACE}]*$",
            "description": (
                "must be letters (A-Z) and digits joined by single '-', '/', '.' or spaces"
            ),
        },
        {"pattern": "[0-9]", "description": "must hold at least one digit"},
        {
            "not": {"pattern": "[A-Za-z]\\.|\\.[A-Za-z]|\\..*\\..*\\."},
            "description": "may have a '.' only between two digits, and at most two",
        },
    ]
}
_BAD_DOTS = re.compile("[A-Za-z]\\.|\\.[A-Za-z]|\\..*\\..*\\.")


def quotable_case_number(value: str) -> str | None:
    """The case number as it may be quoted in a text (surrounding white space removed,
    Unicode dashes made '-'), or None when it cannot be quoted safely (see above)."""
    candidate = value.strip(WHITE_SPACE).translate(_DASHES)
    if (
        len(candidate) > MAX_CASE_NUMBER
        or not _CASE_NUMBER.fullmatch(candidate)
        or not any("0" <= char <= "9" for char in candidate)
        or _BAD_DOTS.search(candidate)
    ):
        return None
    return candidate


AGENCY_PATTERN_RULE = (
    "does not match the agency's case number pattern (intake.case_number_pattern; by "
    "default: no spaces, at most 20 characters, an optional letter prefix and digit groups "
    "joined by '-' or '/', no run of 10 or more digits, nothing written as a phone number)"
)


def accepted_case_number(value: str, pattern: str = DEFAULT_CASE_NUMBER_PATTERN) -> str | None:
    """The case number as a text may quote it: quotable (above) and matching the
    agency's ``pattern`` (domain/case_numbers.py); None otherwise."""
    quotable = quotable_case_number(value)
    if quotable is None or not matches_case_number_pattern(quotable, pattern):
        return None
    return quotable


def _n(message: str) -> str:
    """Mark a msgid for extraction without translating it (translation happens later)."""
    return message


class TextKind(StrEnum):
    """Every text callerconnect sends: three about the call, four replies to the caller."""

    confirmation = "confirmation"
    delay_notice = "delay_notice"
    survey_invitation = "survey_invitation"
    reply_opt_out = "reply_opt_out"
    reply_opt_in = "reply_opt_in"
    reply_help = "reply_help"
    reply_unmonitored = "reply_unmonitored"


_MESSAGES: Mapping[TextKind, str] = {
    TextKind.confirmation: _n(
        "%(agency_name)s: we received your call. Case number %(case_number)s. Police "
        "will follow up. Reply STOP to opt out."
    ),
    TextKind.delay_notice: _n(
        "%(agency_name)s: sorry, officers are busy with other calls and will respond "
        "as soon as possible. In an emergency, call 9-1-1."
    ),
    TextKind.survey_invitation: _n(
        "%(agency_name)s: how did our call-taker and officer do? Take a short, "
        "voluntary survey. Reply STOP to opt out."
    ),
    TextKind.reply_opt_out: _n(
        "%(agency_name)s: you will receive no more texts from us. Reply START to resume."
    ),
    TextKind.reply_opt_in: _n(
        "%(agency_name)s: you will receive texts about your calls again. Reply STOP to opt out."
    ),
    TextKind.reply_help: _n(
        "%(agency_name)s: text updates about your call. Emergency: call 9-1-1. "
        "Non-emergency: %(non_emergency_number)s. Reply STOP to opt out."
    ),
    TextKind.reply_unmonitored: _n(
        "%(agency_name)s: this number is not monitored. In an emergency, call 9-1-1. "
        "Non-emergency: %(non_emergency_number)s."
    ),
}

# The word in front of the delay notice's case number ("Case", "Dossier"); a context
# because "Case" alone is ambiguous for a translator.
CASE_LABEL_CONTEXT = "case number label"
CASE_LABEL = _n("Case")


def msgids() -> list[tuple[str | None, str]]:
    """Every (context, msgid) this module looks up, so tests can check the catalogs."""
    return [(None, msgid) for msgid in _MESSAGES.values()] + [(CASE_LABEL_CONTEXT, CASE_LABEL)]


def _present(value: str | None) -> str | None:
    """The value without surrounding whitespace, or None when there is nothing left."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def render_text(
    kind: TextKind | str,
    language: str | None,
    *,
    agency_name: Mapping[str, str],
    case_number: str | None = None,
    survey_url: str | None = None,
    non_emergency_number: str = DEFAULT_NON_EMERGENCY_NUMBER,
    case_number_pattern: str = DEFAULT_CASE_NUMBER_PATTERN,
) -> SmsText:
    """Render one text for a caller.

    ``language`` ``"en"`` or ``"fr"`` gives that language; ``None`` or anything else
    gives one bilingual text, English first. ``agency_name`` maps ``"en"`` and
    ``"fr"`` to the agency's name in each language.

    Raises ValueError when the kind is unknown or a value it needs is missing:
    ``case_number`` for a confirmation, ``survey_url`` for a survey invitation, or
    the agency's name in a language the text is written in. The delay notice quotes
    the case number only when it is given. The result is not truncated: callers that
    care about cost read ``segments``.

    A case number is quoted only if :func:`accepted_case_number` accepts it with the
    agency's ``case_number_pattern`` (the intake refuses any other; this is the second
    line of defence, for numbers stored before the rule or the pattern changed):
    a confirmation with one it refuses raises ValueError, so it is never sent; a delay
    notice leaves its case line out.
    """
    kind = TextKind(kind)
    languages = (language,) if language in _SINGLE_LANGUAGES else ("en", "fr")
    case_number = _present(case_number)
    survey_url = _present(survey_url)
    quotable = (
        accepted_case_number(case_number, case_number_pattern) if case_number is not None else None
    )

    if kind is TextKind.confirmation and case_number is None:
        raise ValueError("a confirmation needs case_number")
    if kind is TextKind.confirmation and quotable is None:
        raise UnquotableCaseNumber(
            f"case_number cannot be quoted in a text: it {CASE_NUMBER_RULE} and it must "
            f"match the agency's pattern; this one {AGENCY_PATTERN_RULE}"
        )
    case_number = quotable
    if kind is TextKind.survey_invitation and survey_url is None:
        raise ValueError("a survey invitation needs survey_url")
    for lang in languages:
        if _present(agency_name.get(lang)) is None:
            raise ValueError(f"agency_name has no {lang!r} entry")

    lines = [
        translator(lang).gettext(_MESSAGES[kind])
        % {
            "agency_name": agency_name[lang].strip(),
            "case_number": case_number,
            "non_emergency_number": non_emergency_number,
        }
        for lang in languages
    ]
    if kind is TextKind.survey_invitation:
        lines.append(str(survey_url))
    elif kind is TextKind.delay_notice and case_number is not None:
        label = "/".join(
            translator(lang).pgettext(CASE_LABEL_CONTEXT, CASE_LABEL) for lang in languages
        )
        lines.append(f"{label} {case_number}")

    tag = languages[0] if len(languages) == 1 else BILINGUAL
    return SmsText.of(_LINE_BREAK.join(lines), tag)
