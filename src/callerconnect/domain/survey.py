"""The survey: its definition (a versioned, bilingual file) and the rules for answers.

Pure: standard library only, no I/O. The definition arrives as the already-parsed JSON
object (``data/survey-v<N>.json``); :func:`parse_definition` checks it thoroughly, so a
broken edit of the file stops start-up instead of showing a broken form.

Answer rules (:func:`read_answers`):

- every question is optional, but a response needs at least one answer — a scale
  point, an extra choice such as "no officer attended", or a non-blank comment;
- a scale answer is a whole number from 1 to the scale's number of points, or the value
  of one of the question's extra choices; anything else is refused (never clamped);
- the comment is at most ``max_length`` characters once line breaks are normalised to
  ``\\n`` (a browser submits ``\\r\\n`` but counts one character for its ``maxlength``)
  and surrounding blanks are trimmed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "FORM",
    "Answers",
    "Choice",
    "CommentField",
    "DefinitionError",
    "ErrorCode",
    "FieldError",
    "Question",
    "Scale",
    "SurveyDefinition",
    "Validation",
    "normalize_case_number",
    "normalize_comment",
    "parse_definition",
    "read_answers",
]

Localized = Mapping[str, str]
"""A text in each language of the survey: ``{"en": "...", "fr": "..."}``."""

Answer = int | str
"""A scale point (``1`` … ``points``) or the value of an extra choice (``"no_officer"``)."""

FORM = "_form"
"""The field name of errors that concern the whole form (no answer at all)."""

_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CASE_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9 ./_-]{0,31}")
CASE_NUMBER_MAX = 32  # as in the CAD event schema


class DefinitionError(ValueError):
    """The survey definition is unusable; ``path`` locates the problem (``questions[1].id``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"survey definition, {path}: {message}")
        self.path = path


@dataclass(frozen=True)
class Scale:
    """A scale of ``points`` whole numbers from 1, with its two ends labelled."""

    id: str
    points: int
    low: Localized
    high: Localized


@dataclass(frozen=True)
class Choice:
    """An answer beside the scale, such as "no officer attended"."""

    value: str
    label: Localized


@dataclass(frozen=True)
class Question:
    id: str
    text: Localized
    scale: Scale
    choices: tuple[Choice, ...] = ()

    def parse(self, raw: str) -> Answer | None:
        """The answer that ``raw`` (a posted form value) stands for, or None if invalid."""
        for choice in self.choices:
            if raw == choice.value:
                return choice.value
        # Only the values the form offers, written as it writes them ("3", not "03").
        for point in range(1, self.scale.points + 1):
            if raw == str(point):
                return point
        return None


@dataclass(frozen=True)
class CommentField:
    id: str
    max_length: int
    label: Localized
    hint: Localized


@dataclass(frozen=True)
class SurveyDefinition:
    name: str
    version: str
    languages: tuple[str, ...]
    title: Localized
    intro: Localized
    questions: tuple[Question, ...]
    comment: CommentField
    privacy_notice: Localized

    def question(self, question_id: str) -> Question | None:
        for question in self.questions:
            if question.id == question_id:
                return question
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        """Every form field a response can carry, in the order of the form."""
        return (*(q.id for q in self.questions), self.comment.id)


class ErrorCode(StrEnum):
    """Why a posted response was refused; the web layer words each one."""

    NO_ANSWER = "no_answer"
    """Not one question answered and no comment."""
    INVALID_CHOICE = "invalid_choice"
    """A value that is not a point of the scale nor one of the question's choices."""
    COMMENT_TOO_LONG = "comment_too_long"
    CASE_NUMBER_MISSING = "case_number_missing"
    CASE_NUMBER_INVALID = "case_number_invalid"


@dataclass(frozen=True)
class FieldError:
    field: str
    code: ErrorCode


@dataclass(frozen=True)
class Answers:
    """What a respondent gave: scale points or choices by question id, and a comment."""

    values: Mapping[str, Answer]
    comment: str | None

    @property
    def empty(self) -> bool:
        return not self.values and not self.comment


@dataclass(frozen=True)
class Validation:
    answers: Answers
    errors: tuple[FieldError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_for(self, field: str) -> ErrorCode | None:
        for error in self.errors:
            if error.field == field:
                return error.code
        return None


def normalize_comment(text: str) -> str:
    """Line breaks as ``\\n``, no NUL or other control characters but tab and line feed,
    no surrounding blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or ch >= " ")
    return text.strip()


def read_answers(definition: SurveyDefinition, form: Mapping[str, str]) -> Validation:
    """Check a posted form against the definition. Unknown fields are ignored."""
    values: dict[str, Answer] = {}
    errors: list[FieldError] = []
    for question in definition.questions:
        raw = (form.get(question.id) or "").strip()
        if not raw:
            continue
        answer = question.parse(raw)
        if answer is None:
            errors.append(FieldError(question.id, ErrorCode.INVALID_CHOICE))
        else:
            values[question.id] = answer
    comment = normalize_comment(form.get(definition.comment.id) or "")
    if len(comment) > definition.comment.max_length:
        errors.append(FieldError(definition.comment.id, ErrorCode.COMMENT_TOO_LONG))
    answers = Answers(values=values, comment=comment or None)
    if answers.empty and not errors:
        errors.insert(0, FieldError(FORM, ErrorCode.NO_ANSWER))
    return Validation(answers=answers, errors=tuple(errors))


def normalize_case_number(text: str) -> str | ErrorCode:
    """A case number as typed (``" 26-00001 "``) in the form calls are stored with
    (``"26-00001"``), or why it cannot be one."""
    cleaned = " ".join(text.split()).upper()
    if not cleaned:
        return ErrorCode.CASE_NUMBER_MISSING
    if len(cleaned) > CASE_NUMBER_MAX or _CASE_NUMBER.fullmatch(cleaned) is None:
        return ErrorCode.CASE_NUMBER_INVALID
    return cleaned


# --- parsing the definition -------------------------------------------------------------


def parse_definition(raw: object) -> SurveyDefinition:
    """Build the definition from the parsed JSON, or raise :class:`DefinitionError`."""
    top = _object(raw, "$")
    languages = tuple(_list(top.get("languages"), "languages"))
    if not languages or any(not isinstance(lang, str) or not lang for lang in languages):
        raise DefinitionError("languages", "must list the language codes, such as en and fr")
    codes: tuple[str, ...] = tuple(str(lang) for lang in languages)

    def text(value: object, path: str) -> Localized:
        return _localized(value, path, codes)

    scales: dict[str, Scale] = {}
    for scale_id, scale_raw in _object(top.get("scales"), "scales").items():
        path = f"scales.{scale_id}"
        body = _object(scale_raw, path)
        points = body.get("points")
        if not isinstance(points, int) or isinstance(points, bool) or not 2 <= points <= 11:
            raise DefinitionError(f"{path}.points", "must be a whole number from 2 to 11")
        scales[scale_id] = Scale(
            id=scale_id,
            points=points,
            low=text(body.get("low"), f"{path}.low"),
            high=text(body.get("high"), f"{path}.high"),
        )

    questions: list[Question] = []
    seen: set[str] = set()
    for index, question_raw in enumerate(_list(top.get("questions"), "questions")):
        path = f"questions[{index}]"
        body = _object(question_raw, path)
        question_id = _identifier(body.get("id"), f"{path}.id")
        if question_id in seen:
            raise DefinitionError(f"{path}.id", f"{question_id!r} appears twice")
        seen.add(question_id)
        scale_name = body.get("scale")
        if not isinstance(scale_name, str) or scale_name not in scales:
            raise DefinitionError(f"{path}.scale", f"must name one of: {', '.join(scales)}")
        choices: list[Choice] = []
        for c_index, choice_raw in enumerate(_list(body.get("choices", []), f"{path}.choices")):
            c_path = f"{path}.choices[{c_index}]"
            choice = _object(choice_raw, c_path)
            value = _identifier(choice.get("value"), f"{c_path}.value")
            choices.append(Choice(value=value, label=text(choice.get("label"), f"{c_path}.label")))
        questions.append(
            Question(
                id=question_id,
                text=text(body.get("text"), f"{path}.text"),
                scale=scales[scale_name],
                choices=tuple(choices),
            )
        )
    if not questions:
        raise DefinitionError("questions", "at least one question is needed")

    comment_raw = _object(top.get("comment"), "comment")
    comment_id = _identifier(comment_raw.get("id"), "comment.id")
    if comment_id in seen:
        raise DefinitionError("comment.id", f"{comment_id!r} is also a question id")
    max_length = comment_raw.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise DefinitionError("comment.max_length", "must be a whole number of at least 1")
    comment = CommentField(
        id=comment_id,
        max_length=max_length,
        label=text(comment_raw.get("label"), "comment.label"),
        hint=text(comment_raw.get("hint"), "comment.hint"),
    )
    for key in ("survey", "version"):
        if not isinstance(top.get(key), str) or not top[key]:
            raise DefinitionError(key, "must be a non-empty string")
    return SurveyDefinition(
        name=str(top["survey"]),
        version=str(top["version"]),
        languages=codes,
        title=text(top.get("title"), "title"),
        intro=text(top.get("intro"), "intro"),
        questions=tuple(questions),
        comment=comment,
        privacy_notice=text(top.get("privacy_notice"), "privacy_notice"),
    )


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DefinitionError(path, "must be an object")
    return value


def _list(value: object, path: str) -> Sequence[object]:
    if not isinstance(value, list):
        raise DefinitionError(path, "must be a list")
    return value


def _identifier(value: object, path: str) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise DefinitionError(path, "must be lower-case letters, digits and _ (up to 32)")
    return value


def _localized(value: object, path: str, languages: tuple[str, ...]) -> Localized:
    body = _object(value, path)
    out: dict[str, str] = {}
    for lang in languages:
        text = body.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise DefinitionError(f"{path}.{lang}", "missing or empty")
        out[lang] = text
    extra = set(body) - set(languages)
    if extra:
        raise DefinitionError(path, f"unexpected language(s): {', '.join(sorted(extra))}")
    return out
