"""The one door through which free text written by the public reaches a dashboard page
or export: survey comments and callers' texts, redacted by ``domain/redaction.py``.

Comments are already redacted when they are stored (``service/survey.py``); redacting
them again here costs little and covers any stored before that rule, or by an older
version of the word lists.
"""

from __future__ import annotations

from callerconnect.domain.redaction import redact


def redact_comment(text: str) -> str:
    return redact(text)
