"""What a caller's own text means: a keyword (contract section 5.4) or words of danger.

Pure: no I/O. :func:`classify` reads the keyword, :class:`DangerTerms` finds words that
should make a person read the text.

Keywords (the whole text, surrounding blanks and a trailing ``.``/``!`` ignored, any
case, accents ignored so ``ARRÊT``, ``arret`` and ``Arrêt`` are one word):

=============  =====================================================================
``opt_out``    STOP, ARRET/ARRÊT — the contract's words — and the carriers' standard
               synonyms STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE: a
               carrier (Twilio included) blocks every later text to a number that sent
               one of them, so we record the same opt-out rather than keep trying.
``opt_in``     START, DEBUT/DÉBUT, and UNSTOP (the carriers' unambiguous opt-in). Not
               YES: a "yes" is far more often an answer than an opt-in, and staying
               opted out is the safe side.
``help``       HELP, AIDE, INFO
``other``      anything else
=============  =====================================================================
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DangerTerms", "Keyword", "classify", "fold"]


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    OTHER = "other"


_KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("stop", "arret", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"),
        Keyword.OPT_OUT,
    ),
    **dict.fromkeys(("start", "debut", "unstop"), Keyword.OPT_IN),
    **dict.fromkeys(("help", "aide", "info"), Keyword.HELP),
}

# Longer than any keyword by far: no need to fold a whole essay to know it is "other".
_MAX_KEYWORD_TEXT = 32
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower case without accents: ``"ARRÊT"`` → ``"arret"``, ``"À l'aide"`` → ``"a l'aide"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def classify(body: str) -> Keyword:
    """The keyword a whole text is, or :attr:`Keyword.OTHER`.

    Generous at the edges, since missing a STOP means texting someone who asked us not
    to: invisible formatting characters (a zero-width space a keyboard slipped in) are
    dropped, and so is punctuation around the word (``"STOP?"``, ``"«ARRÊT»"``)."""
    stripped = body.strip()
    if len(stripped) > _MAX_KEYWORD_TEXT:
        return Keyword.OTHER
    visible = "".join(ch for ch in fold(stripped) if unicodedata.category(ch) != "Cf")
    word = visible.strip().strip(_EDGE_PUNCTUATION).strip()
    return _KEYWORDS.get(word, Keyword.OTHER)


# Every punctuation character (Unicode categories P*) below U+3100, for stripping the
# edges of a keyword text.
_EDGE_PUNCTUATION = "".join(
    chr(code) for code in range(0x3100) if unicodedata.category(chr(code)).startswith("P")
)


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@dataclass(frozen=True)
class _Term:
    text: str  # as configured, for the record
    words: tuple[str, ...]
    prefix: bool  # the last word may have any ending


class DangerTerms:
    """A list of terms matched as whole words, case and accents ignored.

    ``"help me"`` matches "please HELP me!" but not "helpme" or "help with me"; a term
    ending in ``*`` matches any ending of its last word (``"stab*"``: stabbed, stabbing).
    Apostrophes and hyphens separate words, so ``"à l'aide"`` matches "A L'AIDE" and
    "a l aide".
    """

    def __init__(self, terms: Iterable[str]) -> None:
        parsed: list[_Term] = []
        for raw in terms:
            term = raw.strip()
            prefix = term.endswith("*")
            words = tuple(_words(term.rstrip("*")))
            if not words:
                raise ValueError(f"danger term {raw!r} has no word in it")
            parsed.append(_Term(term, words, prefix))
        self._terms = tuple(parsed)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> DangerTerms:
        """Read the bundled file's format: one term a line, ``#`` comments, blanks."""
        return cls(
            line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
        )

    def __len__(self) -> int:
        return len(self._terms)

    def find(self, body: str) -> list[str]:
        """The configured terms found in ``body``, each once, in list order."""
        words = _words(body)
        found: list[str] = []
        for term in self._terms:
            if term.text not in found and _contains(words, term):
                found.append(term.text)
        return found


def _contains(words: list[str], term: _Term) -> bool:
    size = len(term.words)
    for start in range(len(words) - size + 1):
        window = words[start : start + size]
        if window[:-1] != list(term.words[:-1]):
            continue
        last, wanted = window[-1], term.words[-1]
        if last == wanted or (term.prefix and last.startswith(wanted)):
            return True
    return False
