"""Automatic redaction of free text: survey comments, callers' texts, dead letters.

Pure: the standard library and word lists shipped in the package
(``callerconnect/data/redaction-*.txt``), read once through :mod:`importlib.resources`.
No model, no network: rules and word lists, measured on a labelled set of comments
(``bench/redaction_eval.py``, docs/redaction.md).

:func:`find` returns the personal items of a text as :class:`Span` (kind, start, end);
:func:`redact` replaces each with a placeholder naming its kind (``[name]``,
``[phone]``, ``[email]``, ``[address]``, ``[plate]``, ``[case number]``). Overlapping
items are merged into one placeholder, of the kind that ranks first in :class:`Kind`.

The items that have a shape (e-mail, phone, case number, plate, address) are found by
redaction_shapes.py; names, the merge of overlapping items and the entry points are here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from callerconnect.domain.redaction_shapes import (
    _APOSTROPHE,
    _DIGIT_WORDS,
    _LETTER,
    _RANK,
    Kind,
    Span,
    _addresses,
    _case_numbers,
    _email_local_words,
    _emails,
    _fold,
    _phones,
    _plates,
    _spelled_phones,
)

__all__ = [
    "TRIGGER_WORDS",
    "Kind",
    "Redactor",
    "Span",
    "bundled_redactor",
    "find",
    "redact",
    "redact_contacts",
    "redact_payload",
]


# --- names ------------------------------------------------------------------------------------

# A word, not glued to digits ("K1A", "ABC123" are codes, not names).
_TOKEN = re.compile(rf"(?<!\w)(?>{_LETTER}+(?:[-{_APOSTROPHE}]{_LETTER}+)*)(?!\d)\.?")
_ELISION = re.compile(rf"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)[{_APOSTROPHE}]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?\n:;\"«»()]\s*$|^\s*$|\s-\s*$")

_TITLES = {
    "mr", "mrs", "ms", "miss", "mx", "m", "mme", "mlle", "dr", "dre", "doctor", "docteur",
    "docteure", "officer", "constable", "cst", "const", "pc", "sgt", "sergeant", "sergent",
    "sergente", "detective", "det", "agent", "agente", "agents", "agentes", "officers",
    "constables", "policiers", "inspector", "inspecteur",
    "inspectrice", "insp", "enqueteur", "enqueteuse", "enqueteure", "madame", "monsieur",
    "mister", "lieutenant", "lt", "captain", "capt", "capitaine", "caporal", "corporal",
    "cpl", "policier", "policiere", "superintendent", "chief", "dispatcher", "repartiteur",
    "repartitrice", "preposee", "prepose", "auntie", "uncle", "tante", "oncle",
}  # fmt: skip
# Titles that introduce a name even in lower case ("l'agente Gagnon", "officer Chen").
_TITLES_IN_LOWER_CASE = {
    "agent", "agente", "agents", "agentes", "officers", "constables", "policiers",
    "officer", "constable", "sergent", "sergeant", "detective", "madame",
    "monsieur", "policier", "policiere", "inspecteur", "enqueteur", "cst", "sgt", "dispatcher",
    "repartiteur", "repartitrice",
}  # fmt: skip
# Words after which the next capitalized word(s) are a person's name.
_STRONG_CUES = (
    r"(?:my|our)\s+(?:\w+\s+)?(?:neighbou?rs?|friend|wife|husband|son|daughter|brother|"
    r"sister|mother|father|mom|mum|dad|partner|boyfriend|girlfriend|roommate|landlord|"
    r"landlady|tenant|boss|coworker|co-worker|colleague|ex|nephew|niece|cousin|"
    r"grandson|granddaughter|grandmother|grandfather|caregiver|spouse|child|kid)",
    r"(?:mon|ma|mes|notre|nos)\s+(?:\w+\s+)?(?:voisine?s?|ami|amie|amis|conjointe?|mari|"
    r"femme|fils|fille|fr[eè]re|s(?:œ|oe)ur|m[eè]re|p[eè]re|propri[ée]taire|locataire|"
    r"patron|patronne|coll[eè]gue|chum|blonde|neveu|ni[eè]ce|cousine?|ex|"
    r"petit-fils|petite-fille|grand-m[eè]re|grand-p[eè]re|enfant|colocataire|coloc)",
    r"named|called|nomm[ée]e?s?|appel[ée]e?|prénommée?|pr[eé]nomm[ée]e?",
    r"(?:my|his|her|their)\s+name\s+is|name's|(?:je\s+)?m['’]appelle|s['’]appelle"
    r"|(?:mon|son)\s+nom\s+est|(?:mon|son)\s+nom\s*:",
)
_WEAK_CUES = (
    r"i\s+am|i['’]m|this\s+is|c['’]est|je\s+suis|moi\s+c['’]est",
    r"spoke\s+(?:to|with)|talked\s+(?:to|with)|thanks?\s+(?:to|you)|merci\s+(?:à|a)|"
    r"kudos\s+to|shout\s*-?\s*out\s+to|asked\s+for|parl[ée]\s+(?:à|a|avec)|"
    r"bravo\s+(?:à|a)|said|dit",
)
_CUE_REACH = 60
_STRONG_CUE = re.compile(r"(?:^|\W)(?:" + "|".join(_STRONG_CUES) + r")\W*$", re.IGNORECASE)
_WEAK_CUE = re.compile(r"(?:^|\W)(?:" + "|".join(_WEAK_CUES) + r")\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    word: str  # folded, without elision or final period

    @property
    def capitalized(self) -> bool:
        first = self.text[0]
        return first.isupper() and not (len(self.word) > 1 and self.text.isupper())

    @property
    def shouting(self) -> bool:
        return len(self.word) > 1 and self.text.rstrip(".").isupper()


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        raw = match.group()
        elision = _ELISION.match(raw)
        if elision and len(raw) - elision.end() >= 2 and raw[0].islower():
            start += elision.end()
            raw = raw[elision.end() :]
        if raw.endswith("."):
            raw = raw[:-1]
            end -= 1
        if not raw:
            continue
        tokens.append(_Token(start, end, raw, _fold(raw).replace("\u2019", "'")))
    return tokens


class Redactor:
    """Finds personal items with the given word lists (folded: lower case, no accents).

    ``first_names`` and ``surnames`` are names that are rarely anything else;
    ``ambiguous`` are names that are also ordinary words ("Rose", "Mark", "Pierre",
    "Côté"), taken as names only with more evidence; ``not_names`` are capitalized
    words that are never a person here (function words, places, days, "Police").
    """

    def __init__(
        self,
        first_names: Iterable[str],
        surnames: Iterable[str],
        ambiguous: Iterable[str],
        not_names: Iterable[str],
    ) -> None:
        self.ambiguous = frozenset(_fold(w) for w in ambiguous)
        self.first_names = frozenset(_fold(w) for w in first_names) - self.ambiguous
        self.surnames = frozenset(_fold(w) for w in surnames) - self.ambiguous
        self.not_names = frozenset(_fold(w) for w in not_names)

    # -- public ------------------------------------------------------------------------------

    @property
    def listed_names(self) -> frozenset[str]:
        """Every name in the lists (folded), ambiguous ones included."""
        return self.first_names | self.surnames | self.ambiguous

    def find(self, text: str) -> list[Span]:
        """Personal items in ``text``, sorted, merged where they overlap or touch."""
        found: list[Span] = [
            *_emails(text),
            *_phones(text),
            *_spelled_phones(text),
            *_case_numbers(text),
            *_plates(text),
            *_addresses(text),
        ]
        found.extend(self._names(text, found))
        return _merge(found, text)

    def redact(self, text: str) -> str:
        """``text`` with every item :meth:`find` returns replaced by its placeholder."""
        parts: list[str] = []
        position = 0
        for span in self.find(text):
            parts.append(text[position : span.start])
            parts.append(span.kind.placeholder)
            position = span.end
        parts.append(text[position:])
        return "".join(parts)

    # -- names -------------------------------------------------------------------------------

    def _known(self, word: str) -> bool:
        return word in self.first_names or word in self.surnames

    def _name_like(self, token: _Token) -> bool:
        """Could be part of a name once something says a name is there."""
        if token.word in self.not_names or token.word in _TITLES:
            return False
        if token.capitalized:
            return True
        return token.shouting and (self._known(token.word) or token.word in self.ambiguous)

    def _names(self, text: str, other: Sequence[Span]) -> Iterator[Span]:
        tokens = [t for t in _tokens(text) if not _inside(t, other)]
        is_name = [False] * len(tokens)

        def take(index: int, limit: int, *, lowercase_known: bool = False) -> int:
            """Mark up to ``limit`` name-like tokens from ``index``; the index after them."""
            taken = 0
            while index < len(tokens) and taken < limit:
                token = tokens[index]
                gap = text[tokens[index - 1].end : token.start] if index > 0 else " "
                if taken and not re.fullmatch(r"[ \t]{1,2}|\s?-\s?", gap):
                    break
                known = (
                    self._known(token.word) or token.word in self.ambiguous
                ) and token.word not in self.not_names
                if not (self._name_like(token) or (lowercase_known and known)):
                    break
                is_name[index] = True
                taken += 1
                index += 1
            return index if taken else -1

        for index, token in enumerate(tokens):
            # Cues are short: looking back a little keeps this linear in the text's length.
            before = text[max(0, token.start - _CUE_REACH) : token.start]
            previous = tokens[index - 1] if index else None
            gap = text[previous.end : token.start] if previous else ""
            # From the text, not the previous token: a word redacted before this one as
            # another kind must not change the answer (redaction is idempotent).
            sentence_start = bool(_SENTENCE_END.search(before))
            if token.word in _TITLES and (
                token.capitalized or token.shouting or token.word in _TITLES_IN_LOWER_CASE
            ):
                # "M." is monsieur; a lone "M" is not a title.
                if token.word != "m" or text[token.end : token.end + 1] == ".":
                    after = take(index + 1, 3)
                    # "Officers Daniels and Roy", "aux agents Daniels et Roy".
                    while (
                        after + 1 < len(tokens)
                        and after > index + 1
                        and tokens[after].word in {"and", "et", "&"}
                    ):
                        after = take(after + 1, 3)
            elif _STRONG_CUE.search(before) or (
                _WEAK_CUE.search(before)
                and (self._known(token.word) or token.capitalized)
                and token.word not in self.not_names
                and not re.search(r"[.!?\n]", gap)
            ):
                take(index, 3, lowercase_known=True)
            if is_name[index] or not (token.capitalized or token.shouting):
                continue
            word = token.word
            if word in self.not_names:
                continue
            if word in self.first_names and (token.capitalized or token.shouting):
                is_name[index] = True
                take(index + 1, 2)
            elif word in self.surnames and token.capitalized and not sentence_start:
                is_name[index] = True
            elif word in self.ambiguous and token.capitalized:
                following = tokens[index + 1] if index + 1 < len(tokens) else None
                if following is not None and self._known(following.word) and following.capitalized:
                    is_name[index] = True
                    take(index + 1, 2)
                elif (
                    not sentence_start
                    or (
                        following is not None
                        and following.word in _AFTER_A_PERSON
                        and re.fullmatch(r" ", text[token.end : following.start])
                    )
                    or _WITH_ME.match(text, token.end)
                ):
                    is_name[index] = True
            # A capitalized unknown word right before a known surname: "Dmitri Tremblay".
            if (
                token.capitalized
                and word in self.surnames
                and previous is not None
                and previous.capitalized
                and not is_name[index - 1]
                and re.fullmatch(r"[ \t]{1,2}", gap)
                and previous.word not in self.not_names
                and previous.word not in _TITLES
                and (not sentence_start or self._known(previous.word))
                and previous.word not in _STOP_BEFORE_SURNAME
            ):
                is_name[index - 1] = is_name[index] = True

        # The same words elsewhere in the comment, and words of e-mail addresses' local parts.
        known_here = {tokens[i].word for i in range(len(tokens)) if is_name[i]}
        known_here |= _email_local_words(text) - self.not_names
        for index, token in enumerate(tokens):
            if (
                not is_name[index]
                and token.word in known_here
                and len(token.word) > 2
                and (token.capitalized or token.shouting or token.word in self.first_names)
            ):
                is_name[index] = True
        for index, token in enumerate(tokens):
            if is_name[index]:
                yield Span(Kind.NAME, token.start, token.end)


# English words that, right after an ambiguous first name opening a sentence, show it is a
# person ("Rose was kind", "Mark said") rather than a word ("Mark my words").
_AFTER_A_PERSON = {
    "was", "is", "said", "told", "helped", "called", "came", "explained", "answered",
    "took", "from", "who", "did", "gave", "listened", "asked", "stayed", "knows", "saw",
}  # fmt: skip
_WITH_ME = re.compile(r"\s+(?:and\s+(?:I|me|my)|et\s+moi)\b", re.IGNORECASE)
_STOP_BEFORE_SURNAME = {"the", "le", "la", "les", "de", "du", "des", "a", "an", "et", "and"}


def _inside(token: _Token, spans: Sequence[Span]) -> bool:
    return any(span.start < token.end and token.start < span.end for span in spans)


def _merge(spans: Iterable[Span], text: str) -> list[Span]:
    """One span per overlapping (or only blank-separated name) group; the best-ranked kind."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged:
            last = merged[-1]
            touching_names = (
                last.kind is span.kind is Kind.NAME
                and re.fullmatch(r"[ \t]{1,2}|\s?-\s?", text[last.end : span.start]) is not None
            )
            # "123 Main St., apt 4": one address, not two placeholders.
            address_parts = (
                last.kind is span.kind is Kind.ADDRESS
                and re.fullmatch(r"\s?,?\s{0,2}", text[last.end : span.start]) is not None
            )
            if span.start < last.end or touching_names or address_parts:
                kind = min(last.kind, span.kind, key=_RANK.__getitem__)
                merged[-1] = Span(kind, last.start, max(last.end, span.end))
                continue
        merged.append(span)
    return merged


# --- the bundled word lists ------------------------------------------------------------------


def _word_list(name: str) -> list[str]:
    """One word a line; ``#`` starts a comment; blanks ignored."""
    text = (resources.files("callerconnect.data") / name).read_text(encoding="utf-8")
    return [stripped for line in text.splitlines() if (stripped := line.split("#", 1)[0].strip())]


@cache
def bundled_redactor() -> Redactor:
    """The redactor built from the word lists shipped in ``callerconnect/data``."""
    return Redactor(
        first_names=_word_list("redaction-first-names.txt"),
        surnames=_word_list("redaction-surnames.txt"),
        ambiguous=_word_list("redaction-ambiguous-names.txt"),
        not_names=_word_list("redaction-not-names.txt"),
    )


def find(text: str) -> list[Span]:
    """The personal items of ``text`` (see :class:`Redactor`)."""
    return bundled_redactor().find(text)


def redact(text: str) -> str:
    """``text`` with names, phone numbers, e-mail and street addresses, licence plates
    and case numbers replaced by ``[name]``, ``[phone]``, ``[email]``, ``[address]``,
    ``[plate]`` and ``[case number]``."""
    return bundled_redactor().redact(text)


#: Lower-case words that can start a redaction in a text with no digit, no ``@`` and no
#: capital letter, besides the listed names (a lower-case "jean" after "my neighbour"):
#: e-mails spelled out ("jean dot tremblay at gmail dot com") and numbers spelled out
#: ("six one three …"). A text free of these, of listed names, of digits, of ``@`` and of
#: capitals is returned unchanged.
TRIGGER_WORDS = frozenset({"at", "arobase", "arobas", "dot", "point", *_DIGIT_WORDS})


# --- CAD payloads -----------------------------------------------------------------------------

_PHONE_KEY = re.compile(r"phone|callback|tel|mobile|cell", re.IGNORECASE)


def redact_payload(obj: Any) -> Any:
    """A JSON value (a dead-lettered CAD payload) safe to show: every value under a key
    that names a phone (``caller.phone``, ``callBackInformationUri``, ``mobile``…) is
    replaced by ``[phone]`` whatever it holds, and phone numbers and e-mail addresses are
    redacted in every other string, keys included. Identifiers, types and times are left
    as they are: a supervisor needs them to see why the payload was refused."""
    if isinstance(obj, Mapping):
        return {
            redact_contacts(str(key)): (
                Kind.PHONE.placeholder
                if _PHONE_KEY.search(str(key))
                and obj[key] not in (None, "")
                and not isinstance(obj[key], (Mapping, list, bool))
                else redact_payload(obj[key])
            )
            for key in obj
        }
    if isinstance(obj, list):
        return [redact_payload(item) for item in obj]
    if isinstance(obj, str):
        return redact_contacts(obj)
    return obj


def redact_contacts(text: str) -> str:
    """Only the phone numbers and e-mail addresses of ``text`` redacted: for machine text
    (payloads, error messages) where identifiers must stay readable."""
    spans = _merge([*_emails(text), *_phones(text), *_spelled_phones(text)], text)
    parts: list[str] = []
    position = 0
    for span in spans:
        parts.extend((text[position : span.start], span.kind.placeholder))
        position = span.end
    parts.append(text[position:])
    return "".join(parts)
