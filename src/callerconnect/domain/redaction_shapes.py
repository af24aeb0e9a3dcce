"""Redaction's detectors for items that have a shape: e-mail addresses, phone numbers,
case numbers, licence plates, street addresses (redaction.py finds names, merges the
spans and redacts; its docstring describes the whole).

Phone numbers are found without the ``phonenumbers`` library on purpose: it looks for
*valid* numbers in a few written forms, while redaction must catch every run of digits
grouped the way people type a North American number (spaces, dots, dashes,
parentheses, ``+1``/``1-``, an ``O`` typed for a zero, an extension), valid or not,
and anything written ``+`` and 8 to 15 digits. Phones and e-mails favour recall over
precision: a number redacted by mistake costs a reader little, a leaked one cannot be
taken back.

Names with a leading underscore are shared with redaction.py only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


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
