"""The one door through which a stored comment reaches a dashboard page or export.

Until ``callerconnect.domain.redaction`` (rules and word lists, measured) is merged,
this is a deliberately blunt stand-in: it hides every e-mail address, every word that
holds a digit (phones, case numbers, plates, street numbers) and every capitalised word
that is not a common sentence opener (names, streets). It over-redacts on purpose: a
comment shown too redacted costs a reader a little; one shown with a name cannot be
taken back.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"\S*@\S*")
_WITH_DIGIT = re.compile(r"[^\s]*\d[^\s]*")
_CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'’-]*", re.UNICODE)
_OPENERS = frozenset(
    """
    I A An The This That These Those It Its We Our He She They Their My Me You Your
    Thank Thanks Very Good Great Bad Nobody No Yes Not Nothing Everyone Everything
    When After Before Then But And Also So Still Please Officer Officers Police
    Je J Nous Vous Il Elle Ils Elles Le La Les Un Une Des Ce Cette Ces Merci Très Bien
    Mon Ma Mes Notre Nos Votre Vos Quand Après Avant Mais Et Aussi Donc Personne Oui Non
    Policier Policière Policiers Agent Agente
    """.split()  # noqa: SIM905 (a word list reads better as words)
)


def _capitalised(match: re.Match[str]) -> str:
    word = match.group(0)
    return word if word in _OPENERS else "[name]"


def redact_comment(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _WITH_DIGIT.sub("[number]", text)
    return _CAPITALISED.sub(_capitalised, text)
