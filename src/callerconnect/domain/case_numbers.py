"""Which case numbers an agency's texts may quote.

The case number is the one value from outside that a text quotes, from the police's own
number, to someone who just called them. Letters, digits and spaces were once enough to
pass, and ``1 CALL 18885550199 NOW`` went out verbatim with a tap-to-call number in it.
So a case number must also match the agency's own pattern (``intake.case_number_pattern``,
a Python regular expression matched against the whole number after surrounding blanks
are removed and Unicode dashes read as ``-``), checked at intake and again right before
a text is written.

The default fits every ordinary agency case number (``24-123456``, ``2024-12345678``,
``OPS24-1234``, ``GO-2024-123456``) and nothing that reads as an instruction or a phone
number: no spaces, at most 20 characters, an optional letter prefix of up to four
letters, digit groups joined by ``-`` or ``/``, no run of 10 or more digits, and no
digits grouped the way a North American phone number is written (``613-555-0199``,
``1-888-555-0199``, ``555-0199``).
"""

from __future__ import annotations

import re
from functools import lru_cache

_ALLOWED = "[A-Za-z0-9/-]"
_PHONE = (
    "(?:1[-/]?)?[2-9][0-9]{2}[-/]?[2-9][0-9]{2}[-/]?[0-9]{4}"  # 613-555-0199, 1-888-555-0199
    "|[2-9][0-9]{2}[-/][0-9]{4}"  # 555-0199, a local number
)

DEFAULT_CASE_NUMBER_PATTERN = (
    f"(?={_ALLOWED}{{1,20}}\\Z)"  # at most 20 characters, no spaces
    f"(?!{_ALLOWED}*[0-9]{{10}})"  # no run of 10 or more digits
    f"(?!(?:{_ALLOWED}*[^0-9])?(?:{_PHONE})(?![0-9]))"  # nothing written as a phone number
    "(?:[A-Za-z]{1,4}-?)?"  # an optional short letter prefix: OPS24-, GO-
    "[0-9]+(?:[-/][0-9]+)*"  # digit groups joined by - or /
)


@lru_cache(maxsize=16)
def compile_case_number_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; :class:`re.error` when it is not a regular expression."""
    return re.compile(pattern)


def matches_case_number_pattern(case_number: str, pattern: str) -> bool:
    """Whether the (already normalised) ``case_number`` matches ``pattern`` as a whole."""
    return compile_case_number_pattern(pattern).fullmatch(case_number) is not None
