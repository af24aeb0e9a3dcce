"""Automatic redaction of free text: survey comments, callers' texts, dead letters.

Pure: the standard library and word lists shipped in the package
(``callerconnect/data/redaction-*.txt``), read once through :mod:`importlib.resources`.
No model, no network: rules and word lists, measured on a labelled set of comments
(``bench/redaction_eval.py``, docs/redaction.md).

:func:`find` returns the personal items of a text as :class:`Span` (kind, start, end);
:func:`redact` replaces each with a placeholder naming its kind (``[name]``,
``[phone]``, ``[email]``, ``[address]``, ``[plate]``, ``[case number]``). Overlapping
items are merged into one placeholder, of the kind that ranks first in :class:`Kind`.

Phone numbers are found without the ``phonenumbers`` library on purpose: it looks for
*valid* numbers in a few written forms, while redaction must catch every run of digits
grouped the way people type a North American number (spaces, dots, dashes,
parentheses, ``+1``/``1-``, an ``O`` typed for a zero, an extension), valid or not,
and anything written ``+`` and 8 to 15 digits. Phones and e-mails favour recall over
precision: a number redacted by mistake costs a reader little, a leaked one cannot be
taken back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

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


class Kind(StrEnum):
    """What a redacted item was; the value is the placeholder's text. Listed by rank:
    when two items overlap, the merged placeholder takes the kind listed first."""

    EMAIL = "email"
    PHONE = "phone"
    CASE_NUMBER = "case number"
    PLATE = "plate"
    ADDRESS = "address"
    NAME = "name"

    @property
    def placeholder(self) -> str:
        return f"[{self.value}]"


_RANK = {kind: rank for rank, kind in enumerate(Kind)}


@dataclass(frozen=True)
class Span:
    kind: Kind
    start: int
    end: int


# --- shared pieces -------------------------------------------------------------------------

# Separators people put between digit groups: spaces of every kind, dots, slashes,
# underscores, parentheses and every dash (hyphen, non-breaking hyphen, en/em dash, minus).
_DIGIT_SEP = r"[\s./_()\u2010-\u2015\u2212-]"
_LETTER = r"[^\W\d_]"
_APOSTROPHE = "'\u2019"


def _fold(text: str) -> str:
    """Lower case without accents, for looking words up in the lists."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


# --- e-mail ---------------------------------------------------------------------------------

_TLD = r"(?:com|ca|net|org|fr|info|edu|gouv|gov|io|co|me|us|uk|be|ch|biz|qc\.ca|on\.ca|gc\.ca)"
_PROVIDER = (
    r"(?:gmail|hotmail|yahoo|outlook|live|icloud|videotron|sympatico|bell|rogers|msn|"
    r"aol|proton|protonmail|cogeco|teksavvy|shaw|telus)"
)
# A local part as people type it, valid or not: any run of characters but blanks, "@",
# brackets, the punctuation that ends a word in a sentence (",;:") and quotes, holding
# dots anywhere ("a.@aa.ca", ".jean@x.ca"), plus signs, symbols and letters of any
# script; an apostrophe inside it but never first ("o'brien@…", "'jean'@…" quoted).
# Or a quoted local part ('"jean d"@x.ca'). A match starts only where no such character
# precedes it, so a long run without an "@" is read once, not once a character.
_LOCAL_CHAR = r"[^\s@<>()\[\]{},;:\"'\u00ab\u00bb\u2018-\u201f]"
_LOCAL_PART = rf"(?:\"[^\"\n@]{{1,64}}\"|{_LOCAL_CHAR}(?:{_LOCAL_CHAR}|['\u2019])*)"
_EMAIL_PLAIN = re.compile(
    rf"(?<!{_LOCAL_CHAR}){_LOCAL_PART}@[\w-]+(?:\.[\w-]+)*(?:\s{{0,2}}\.\s{{0,2}}{_TLD}\b)?",
    re.IGNORECASE,
)
# Any blank-free word holding an "@" before a dotted domain, whatever its local part
# ("(jean)@x.ca", "[jean]@x.ca"): the last net for shapes the pattern above declines.
_EMAIL_WORD = re.compile(r"(?<!\S)[^\s@]+@[\w-]+(?:\.[\w-]+)+")
# The same with blanks around the "@" ("jean @ gmail.com"); searched on its own so that a
# stray "@" before a real address cannot swallow its start.
_EMAIL_SPACED = re.compile(
    r"(?<![\w.+'-])[\w.+'-]*\w\s{1,2}@\s{0,2}[\w-]+(?:\.[\w-]+)*"
    r"|(?<![\w.+'-])[\w.+'-]*\w@\s{1,2}[\w-]+(?:\.[\w-]+)*",
    re.IGNORECASE,
)
_AT_WORD = r"(?:\s*[(\[{<]\s*(?:at|arobase|arobas)\s*[)\]}>]\s*|\s+(?:at|arobase|arobas)\s+)"
_DOT_WORD = r"(?:\s*[(\[{<]\s*(?:dot|point)\s*[)\]}>]\s*|\s+(?:dot|point)\s+|\s*\.\s*(?=[\w-]))"
_LOCAL_SEP = rf"(?:{_DOT_WORD}|[_+'-]|\s+(?:underscore|tiret|trait\s+d'union)\s+)"
# The words of a local part hold no separator character, so that a string of words and
# separators can be split only one way (no catastrophic backtracking on "a_a_a_a…").
_LOCAL_WORD = r"[^\W_]+"
_EMAIL_SPELLED = re.compile(
    rf"(?<![\w.+'-])(?:[^\W\d_]+\s(?=\d{{1,4}}{_AT_WORD}))?{_LOCAL_WORD}"
    rf"(?:{_LOCAL_SEP}{_LOCAL_WORD})*{_AT_WORD}"
    rf"(?:[\w-]+(?:{_DOT_WORD}[\w-]+)*{_DOT_WORD}{_TLD}|{_PROVIDER})\b",
    re.IGNORECASE,
)


def _emails(text: str) -> Iterator[Span]:
    for pattern in (_EMAIL_PLAIN, _EMAIL_WORD, _EMAIL_SPACED, _EMAIL_SPELLED):
        for match in pattern.finditer(text):
            yield Span(Kind.EMAIL, match.start(), match.end())


# Words that spell an e-mail's punctuation, not part of a name.
_SPELL = {"dot", "point", "underscore", "tiret", "trait", "union"}


def _email_local_words(text: str) -> set[str]:
    """Words of e-mail local parts (``jean.tremblay@…`` → jean, tremblay): a name typed
    elsewhere in the same comment is then recognised too."""
    words: set[str] = set()
    for pattern in (_EMAIL_PLAIN, _EMAIL_WORD, _EMAIL_SPACED, _EMAIL_SPELLED):
        for match in pattern.finditer(text):
            local = re.split(r"@|" + _AT_WORD, match.group(0), maxsplit=1, flags=re.I)[0]
            words.update(
                _fold(w) for w in re.findall(_LETTER + "{2,}", local) if _fold(w) not in _SPELL
            )
    return words


# --- phone numbers --------------------------------------------------------------------------

# An ``O`` or ``o`` typed among digits ("613 555 O199") is read as a zero: a token made of
# digits and O's only, with at least one digit, is given zeros in the digit view.
_DIGITS_AND_OS = re.compile(r"(?<![^\W\d_])[0-9Oo]*\d[0-9Oo]*(?![^\W\d_])")
_DIGIT_RUN = re.compile(rf"\+?\(?\d+(?:{_DIGIT_SEP}{{1,3}}\d+)*\)?")
_DIGIT_GROUP = re.compile(r"\d+")
# Ways the digits of a North American number are grouped (10 digits, optionally after a
# 1), and a 7-digit local number.
_NANP_SHAPES = {
    (10,),
    (3, 7),
    (3, 3, 4),
    (6, 4),
    (3, 3, 2, 2),
    (3, 1, 2, 4),
    (3, 3, 1, 3),
    (3, 3, 2, 1, 1),
}
_LOCAL_SHAPES = {(3, 4)}
_EXTENSION = re.compile(
    r"\s{0,3}[,;]?\s{0,3}(?:ext(?:ension)?\.?|x|poste|p\.|#)\s{0,3}\d{1,6}\b", re.IGNORECASE
)
_PHONE_CUE = re.compile(
    r"(?:phone|call|cell|tel|text|number|num[eé]ro|t[eé]l[eé]phone|appel|joindre|rejoindre|"
    r"cellulaire|texto)\w*\W{1,20}$",
    re.IGNORECASE,
)


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "zéro": "0",
    "un": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "sept": "7",
    "huit": "8", "neuf": "9",
}  # fmt: skip
_SPELLED_PIECE = r"(?:\d+|" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True)) + ")"
_SPELLED_RUN = re.compile(
    rf"(?<![\w]){_SPELLED_PIECE}(?:[\s,.\u2010-\u2015-]{{1,3}}{_SPELLED_PIECE})+(?!\w)",
    re.IGNORECASE,
)


def _spelled_phones(text: str) -> Iterator[Span]:
    """Numbers written partly in words to get past a filter: "six one three 555 0171"."""
    for run in _SPELLED_RUN.finditer(text):
        pieces = list(re.finditer(_SPELLED_PIECE, run.group(), re.IGNORECASE))
        words = [p for p in pieces if not p.group().isdigit()]
        if len(words) < 2:
            continue
        digits = "".join(
            p.group() if p.group().isdigit() else _DIGIT_WORDS[p.group().lower()] for p in pieces
        )
        if len(digits) in (7, 10) or (len(digits) == 11 and digits.startswith("1")):
            yield Span(Kind.PHONE, run.start(), run.end())


def _digit_view(text: str) -> str:
    """The text with O's typed among digits made zeros; same length, same offsets."""
    return _DIGITS_AND_OS.sub(lambda m: re.sub("[Oo]", "0", m.group(0)), text)


def _is_nanp(lengths: tuple[int, ...], first: str) -> bool:
    if lengths in _NANP_SHAPES:
        return True
    # "1 613 555 0199", "1-613-555-0199", "16135550199": a leading 1 before a shape.
    if first.startswith("1"):
        if lengths[0] == 1:
            return lengths[1:] in _NANP_SHAPES
        # The 1 typed against the area code: "1613 555 0199", "16135550199".
        return (lengths[0] - 1, *lengths[1:]) in _NANP_SHAPES
    return False


def _phones(text: str) -> Iterator[Span]:
    view = _digit_view(text)
    for run in _DIGIT_RUN.finditer(view):
        start = run.start()
        groups = [
            (m.start() + start, m.end() + start, m.group())
            for m in _DIGIT_GROUP.finditer(run.group())
        ]
        # A first group glued to a word ("ABC123", "K1A") belongs to a plate or a code.
        if start > 0 and view[start - 1].isalnum():
            groups = groups[1:]
        elif run.group().startswith("+"):
            yield from _international(text, groups)
            continue
        yield from _grouped(text, view, groups)


def _international(text: str, groups: list[tuple[int, int, str]]) -> Iterator[Span]:
    total = 0
    last = None
    for index, (_, group_end, digits) in enumerate(groups):
        if total + len(digits) > 15:
            break
        total += len(digits)
        last = (index, group_end)
    if last is not None and total >= 8:
        yield _with_extension(text, Span(Kind.PHONE, groups[0][0] - 1, last[1]))
    if last is not None and last[0] + 1 < len(groups):
        yield from _grouped(text, text, groups[last[0] + 1 :])


def _grouped(text: str, view: str, groups: list[tuple[int, int, str]]) -> Iterator[Span]:
    index = 0
    while index < len(groups):
        best = None
        for stop in range(index + 1, min(index + 6, len(groups)) + 1):
            lengths = tuple(len(g[2]) for g in groups[index:stop])
            if sum(lengths) > 11:
                break
            if _is_nanp(lengths, groups[index][2]):
                best = stop
            elif lengths in _LOCAL_SHAPES or (
                lengths == (7,)
                and _PHONE_CUE.search(text, max(0, groups[index][0] - 40), groups[index][0])
            ):
                best = best or stop
        if best is None:
            index += 1
            continue
        start = groups[index][0]
        if start > 0 and view[start - 1] == "(":
            start -= 1
        end = groups[best - 1][1]
        if end < len(view) and view[end] == ")":
            end += 1
        yield _with_extension(text, Span(Kind.PHONE, start, end))
        index = best


def _with_extension(text: str, span: Span) -> Span:
    match = _EXTENSION.match(text, span.end)
    return Span(span.kind, span.start, match.end()) if match else span


# --- case numbers ----------------------------------------------------------------------------

_CASE_SHAPE = re.compile(
    r"(?<![\w/-])#?(?:[A-Z]{1,5}-?)?(?:(?:19|20)\d{2}|\d{2})[-/]\d{4,8}(?![\w/-])"
    r"|(?<![\w/-])[A-Z]{2,5}-?\d{2,4}-\d{4,8}(?![\w/-])",
    re.IGNORECASE,
)
_CASE_CUE = re.compile(
    r"\b(?:case|file|report|incident|occurrence|reference|ref|event|dossier|rapport|"
    r"r[eé]f[eé]rence|[eé]v[eé]nement|num[eé]ro\s+d[e'’]\s*(?:dossier|[eé]v[eé]nement|rapport|"
    r"incident|r[eé]f[eé]rence))\b(?:\s+(?:number|no\.?|num[eé]ro|n°|#|was|is|:|est|de|du))*"
    r"\s*[:#]?\s*(#?[A-Z]{0,5}-?\d[\d/-]{3,18}\d)\b",
    re.IGNORECASE,
)


def _case_numbers(text: str) -> Iterator[Span]:
    for match in _CASE_SHAPE.finditer(text):
        yield Span(Kind.CASE_NUMBER, match.start(), match.end())
    for match in _CASE_CUE.finditer(text):
        yield Span(Kind.CASE_NUMBER, match.start(1), match.end(1))


# --- licence plates -------------------------------------------------------------------------

_PLATE_SHAPE = re.compile(
    r"(?<![\w-])(?:[A-Z]{4}[ -]?\d{3}|[A-Z]{3}[ -]?\d{3,4}|\d{3}[ -]?[A-Z]{3}|"
    r"[A-Z]\d{2}[ -]?[A-Z]{3}|[A-Z]{2}\d{2}[ -]?[A-Z]{2}|\d[A-Z]{2}[ -]?\d{3}|"
    r"[A-Z]{3}[ -]?[A-Z]\d{2})(?![\w-])"
)
# Upper-case words that fill a plate's letter slots in ordinary text.
_NOT_PLATE_LETTERS = {
    "THE", "AND", "FOR", "YOU", "WAS", "ARE", "BUT", "NOT", "CAD", "USD", "APT", "RUE",
    "OPS", "SPO", "PST", "EST", "EDT", "HWY", "RTE", "FEB", "MAR", "APR", "JUN", "JUL",
    "AUG", "SEP", "OCT", "NOV", "DEC", "JAN", "MAY", "AVE", "BLVD", "UNIT", "SUITE",
    "ROOM", "CODE", "ONLY", "OVER", "AFTER", "KM", "MIN", "HRS", "AM", "PM",
}  # fmt: skip
_PLATE_CUE = re.compile(
    r"\b(?:plates?|plated|licen[cs]e(?:\s+plate)?|plaques?(?:\s+d'immatriculation)?|"
    r"immatricul\w*|tag)\b(?:\s+(?:number|no\.?|num[eé]ro|was|is|:|est|reads?|#|of|de|"
    r"la|le|du|plate|d['’]immatriculation|ontario|qu[eé]bec|de\s+l['’]ontario))*\s*[:#]?\s*"
    r"((?=[\w -]{0,9}\d)(?=[\w -]{0,9}[^\W\d_])[^\W_]{1,4}(?:[ -]?[^\W_]{1,4})?)(?![\w-])",
    re.IGNORECASE,
)


def _plates(text: str) -> Iterator[Span]:
    for match in _PLATE_SHAPE.finditer(text):
        letters = re.sub(r"[^A-Z]", " ", match.group()).split()
        if any(word in _NOT_PLATE_LETTERS for word in letters):
            continue
        yield Span(Kind.PLATE, match.start(), match.end())
    for match in _PLATE_CUE.finditer(text):
        plate = match.group(1)
        if any(ch.isdigit() for ch in plate) and any(ch.isalpha() for ch in plate):
            yield Span(Kind.PLATE, match.start(1), match.end(1))


# --- street addresses ------------------------------------------------------------------------

_POSTAL_CODE = re.compile(
    r"(?<![\w-])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ -]?\d[ABCEGHJ-NPRSTV-Z]\d(?![\w-])",
    re.IGNORECASE,
)
# "Unit", "unité", "suite" and "bureau" are also a police unit, "la suite" (what comes
# next) and an office: taken as part of an address only after a comma or with a "#".
_UNIT = re.compile(
    r"\b(?:apt|apartment|app|appt|appartement|logement|log)\.?\s{0,2}"
    r"(?:#|no\.?|n°)?\s{0,2}\d{1,5}[A-Za-z]?\b"
    r"|(?:(?<=,)|(?<=, ))(?:unit|unité|suite|bureau)\s{0,2}(?:#|no\.?|n°)?\s{0,2}\d{1,5}[A-Za-z]?\b"
    r"|\b(?:unit|unité|suite|bureau)\s{0,2}#\s{0,2}\d{1,5}[A-Za-z]?\b",
    re.IGNORECASE,
)
_EN_TYPES = (
    r"(?i:street|st|avenue|ave|av|road|rd|drive|dr|boulevard|blvd|crescent|cres|cr|court|crt|ct|"
    r"place|pl|lane|ln|way|circle|cir|terrace|terr|parkway|pkwy|private|pvt|gate|trail|row|"
    r"square|sq|heights|hts|grove|highway|hwy|close|mews|path|ridge|point|pt)"
)
_EN_QUIET_TYPES = r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|crescent|cres)"
_FR_TYPES = (
    r"(?:rue|avenue|av|boulevard|boul|blvd|bd|chemin|ch|place|pl|mont[ée]e|rang|route|rte|"
    r"croissant|promenade|prom|all[ée]e|c[ôo]te|impasse|terrasse|carr[ée]|cours|ruelle|"
    r"sentier|voie|circuit|parc|passage|rond-point|autoroute|esplanade|quai)"
)
_CAP_WORD = r"(?:[A-ZÀ-ÖØ-Þ][\w'’.-]*|\d{1,3}(?:st|nd|rd|th|e|re|er|ième))"
_DIRECTION = r"(?:\s+(?:East|West|North|South|Est|Ouest|Nord|Sud|E|W|N|S|O)\b\.?)?"
_CIVIC = r"\b\d{1,5}[A-Za-z]?(?:[- ]\d{1,5})?,?"
_ADDRESS_EN = re.compile(
    rf"{_CIVIC}\s+(?:{_CAP_WORD}\s+){{1,4}}{_EN_TYPES}\b\.?{_DIRECTION}"
    rf"|{_CIVIC}\s+(?:[a-z][\w'’-]*\s+){{1,2}}{_EN_QUIET_TYPES}\b\.?",
)
_FR_LINK = r"(?:(?:de\s+la|de\s+l['’]|du|des|de|d['’]|la|le|l['’])\s*)?"
_ADDRESS_FR = re.compile(
    rf"{_CIVIC}\s+(?i:{_FR_TYPES})\b\.?\s+{_FR_LINK}"
    rf"(?:{_CAP_WORD}(?:\s+(?:{_CAP_WORD}|de|du|des|la))*|[a-zà-ÿ][\w'’-]+){_DIRECTION}",
)
_STREET_NAMED_EN = re.compile(
    rf"\b(?:{_CAP_WORD}\s+){{1,3}}(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Boulevard|Blvd|"
    r"Crescent|Cres|Court|Crt|Lane|Way|Parkway|Private|Terrace|Circle|Place|Pl)\b\.?"
    rf"{_DIRECTION}"
)
_STREET_NAMED_FR = re.compile(
    rf"\b(?i:rue|avenue|boulevard|boul|chemin|promenade|mont[ée]e|croissant|impasse|"
    rf"route|rang|place)\b\.?\s+{_FR_LINK}"
    rf"{_CAP_WORD}(?:[\s-]+(?:{_CAP_WORD}))*{_DIRECTION}",
)
# "Street" words that follow a capitalized word without naming a street: "Main Street" is
# one, "The Way" and "On Point" are not.
_NOT_STREET_NAME = {"the", "a", "my", "on", "at", "in", "our", "your", "this", "that", "le", "la"}


# An apartment written "#6" right after a street address: "455 Cooper St #6".
_UNIT_AFTER_STREET = re.compile(r"\s{0,2},?\s{0,2}#\s{0,2}\d{1,5}[A-Za-z]?\b")


def _addresses(text: str) -> Iterator[Span]:
    for pattern in (_POSTAL_CODE, _UNIT):
        for match in pattern.finditer(text):
            yield Span(Kind.ADDRESS, match.start(), match.end())
    for pattern in (_ADDRESS_EN, _ADDRESS_FR, _STREET_NAMED_FR):
        for match in pattern.finditer(text):
            unit = _UNIT_AFTER_STREET.match(text, match.end())
            yield Span(Kind.ADDRESS, match.start(), unit.end() if unit else match.end())
    for match in _STREET_NAMED_EN.finditer(text):
        words = match.group().split()
        # Skip leading words that cannot be part of a street's name (sentence-initial
        # "The", pronouns).
        skip = 0
        while skip < len(words) - 1 and _fold(words[skip]) in _NOT_STREET_NAME:
            skip += 1
        if skip == len(words) - 1:
            continue
        offset = match.start() + sum(len(w) for w in words[:skip])
        offset = text.index(words[skip], offset)
        yield Span(Kind.ADDRESS, offset, match.end())


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
