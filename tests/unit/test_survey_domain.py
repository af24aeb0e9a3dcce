"""The survey definition and the answer rules (pure), and the pages' catalogs."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2.ext
import pytest
from babel.messages.extract import extract

from callerconnect.domain.survey import (
    FORM,
    DefinitionError,
    ErrorCode,
    normalize_case_number,
    normalize_comment,
    parse_definition,
    read_answers,
)
from callerconnect.i18n import LANGUAGES
from callerconnect.i18n.pages import load_pages_catalog
from callerconnect.service.survey import load_definition
from callerconnect.web.survey_language import negotiate, pick_language

RAW: dict[str, Any] = json.loads(
    (resources.files("callerconnect.data") / "survey-v1.json").read_text(encoding="utf-8")
)
DEFINITION = load_definition()
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


# --- the bundled definition -------------------------------------------------------------


def test_bundled_definition_has_the_questions_of_the_issue() -> None:
    ids = [q.id for q in DEFINITION.questions]

    assert ids == ["call_taker", "officer", "kept_informed", "respect", "overall"]
    assert DEFINITION.version == "1"
    assert DEFINITION.languages == ("en", "fr")
    assert all(q.scale.points == 5 for q in DEFINITION.questions)
    officer = DEFINITION.question("officer")
    assert officer is not None
    assert [c.value for c in officer.choices] == ["no_officer"]
    assert officer.choices[0].label["en"] == "No officer attended"
    assert DEFINITION.comment.max_length == 1000
    assert "personal information" in DEFINITION.comment.hint["en"]
    assert "renseignements personnels" in DEFINITION.comment.hint["fr"]


def test_privacy_notice_names_purpose_authority_and_contact_in_both_languages() -> None:
    english, french = DEFINITION.privacy_notice["en"], DEFINITION.privacy_notice["fr"]

    assert "Municipal Freedom of Information and Protection of Privacy Act" in english
    assert "evaluate and improve" in english
    assert "Questions about this collection" in english
    assert "Loi sur l'accès à l'information municipale et la protection" in french
    assert "évaluer et à améliorer" in french
    assert "Questions sur cette collecte" in french


@pytest.mark.parametrize(
    ("path", "change", "expected"),
    [
        ("languages", [], "languages"),
        ("questions", [], "questions"),
        ("questions.0.id", "Bad Id", "questions[0].id"),
        ("questions.1.id", "call_taker", "questions[1].id"),
        ("questions.0.scale", "nope", "questions[0].scale"),
        ("questions.0.text.fr", "", "questions[0].text.fr"),
        ("scales.satisfaction.points", 1, "scales.satisfaction.points"),
        ("scales.satisfaction.points", True, "scales.satisfaction.points"),
        ("comment.max_length", 0, "comment.max_length"),
        ("comment.id", "overall", "comment.id"),
        ("version", "", "version"),
        ("privacy_notice.en", None, "privacy_notice.en"),
    ],
)
def test_broken_definition_is_refused_naming_the_place(
    path: str, change: object, expected: str
) -> None:
    raw = copy.deepcopy(RAW)
    target: Any = raw
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[int(last) if isinstance(target, list) else last] = change

    with pytest.raises(DefinitionError) as error:
        parse_definition(raw)

    assert error.value.path == expected


def test_definition_with_a_third_language_text_is_refused() -> None:
    raw = copy.deepcopy(RAW)
    raw["title"]["de"] = "Wie war es?"

    with pytest.raises(DefinitionError, match="unexpected language"):
        parse_definition(raw)


# --- answers ----------------------------------------------------------------------------


def test_full_answers_are_read_as_points_and_choices() -> None:
    result = read_answers(
        DEFINITION,
        {
            "call_taker": "5",
            "officer": "no_officer",
            "kept_informed": "1",
            "respect": " 3 ",
            "overall": "4",
            "comment": "  Thanks\r\nagain  ",
            "csrf_token": "ignored",
        },
    )

    assert result.ok
    assert result.answers.values == {
        "call_taker": 5,
        "officer": "no_officer",
        "kept_informed": 1,
        "respect": 3,
        "overall": 4,
    }
    assert result.answers.comment == "Thanks\nagain"


def test_every_question_is_optional_but_one_answer_is_needed() -> None:
    assert read_answers(DEFINITION, {"respect": "2"}).ok
    assert read_answers(DEFINITION, {"comment": "Only words."}).ok
    for empty in ({}, {"overall": ""}, {"comment": " \r\n\t "}):
        result = read_answers(DEFINITION, empty)
        assert not result.ok
        assert result.error_for(FORM) is ErrorCode.NO_ANSWER


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("overall", "0"),
        ("overall", "6"),
        ("overall", "-1"),
        ("overall", "4.0"),
        ("overall", "٣"),  # a digit, but not an ASCII one
        ("overall", "no_officer"),  # a choice of another question
        ("officer", "none"),
        ("officer", "05"),
        ("overall", "+3"),
    ],
)
def test_values_outside_a_question_are_refused_not_clamped(field: str, value: str) -> None:
    result = read_answers(DEFINITION, {field: value, "respect": "3"})

    assert result.error_for(field) is ErrorCode.INVALID_CHOICE
    assert result.error_for(FORM) is None  # "respect" was answered


def test_comment_length_is_counted_after_normalising_line_breaks() -> None:
    at_limit = "a" * 499 + "\r\n" + "b" * 500
    over = "a" * 1001

    assert read_answers(DEFINITION, {"comment": at_limit}).ok
    result = read_answers(DEFINITION, {"comment": over})
    assert result.error_for("comment") is ErrorCode.COMMENT_TOO_LONG
    assert result.error_for(FORM) is None  # one error is enough


def test_comment_loses_control_characters_but_keeps_lines() -> None:
    assert normalize_comment("\x00a\x07b\tc\r\nd\re ") == "ab\tc\nd\ne"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (" 26-00001 ", "26-00001"),
        ("ops-2025-123", "OPS-2025-123"),
        ("26  00001", "26 00001"),
        ("", ErrorCode.CASE_NUMBER_MISSING),
        ("   ", ErrorCode.CASE_NUMBER_MISSING),
        ("x" * 33, ErrorCode.CASE_NUMBER_INVALID),
        ("26-0001<script>", ErrorCode.CASE_NUMBER_INVALID),
        ("-26", ErrorCode.CASE_NUMBER_INVALID),
    ],
)
def test_case_numbers_are_normalised_or_refused(typed: str, expected: object) -> None:
    assert normalize_case_number(typed) == expected


# --- language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        ("en-CA,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,fr;q=0.5,en;q=0.4", "fr"),
        ("en;q=0.2, fr;q=0.7", "fr"),
        ("es, de", None),
        ("fr;q=abc, en", "en"),
        ("fr;q=0", None),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


def test_explicit_language_then_invitation_then_browser_then_english() -> None:
    assert pick_language("fr", "en", "en") == "fr"
    assert pick_language("xx", "fr", "en") == "fr"
    assert pick_language(None, None, "fr-CA") == "fr"
    assert pick_language(None, None, None) == "en"
    assert pick_language(None, "de", None) == "en"


# --- the pages' catalogs ------------------------------------------------------------------

WEB = Path(__file__).resolve().parents[2] / "src" / "callerconnect" / "web"


def used_msgids() -> set[str | tuple[str, str]]:
    """Every msgid the survey pages use: marked in web/survey*.py and in the templates."""
    found: set[str | tuple[str, str]] = set()
    for module in sorted(WEB.glob("survey*.py")):
        with module.open("rb") as source:
            for _line, message, _comments, _context in extract(
                "python", source, keywords={"_": None, "_n": (1, 2)}
            ):
                found.add(message)
    for template in sorted((WEB / "templates" / "survey").glob("*.html")):
        with template.open("rb") as source:
            for _line, message, _comments, _context in extract(
                jinja2.ext.babel_extract, source, keywords={"_": None, "ngettext": (1, 2)}
            ):
                found.add(message)
    return found


def test_the_pages_use_msgids() -> None:
    assert len(used_msgids()) > 30


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_message_is_translated(language: str) -> None:
    catalog = load_pages_catalog(language)
    for msgid in used_msgids():
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        message = catalog.get(key)
        assert message is not None, (language, msgid)
        assert message.string and not message.fuzzy, (language, msgid)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), (language, msgid)


@pytest.mark.parametrize("language", LANGUAGES)
def test_page_catalog_placeholders_match(language: str) -> None:
    for message in load_pages_catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        allowed = {name for msgid in ids for name in PLACEHOLDER.findall(msgid)}
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= allowed, text
            assert "%" not in PLACEHOLDER.sub("", text), text
        # The last form (the plural, or the only one) has exactly the msgid's placeholders.
        assert set(PLACEHOLDER.findall(strings[-1])) == set(PLACEHOLDER.findall(ids[-1]))


def test_page_catalogs_hold_the_same_messages_and_english_is_the_identity() -> None:
    english, french = load_pages_catalog("en"), load_pages_catalog("fr")

    assert {m.id for m in english if m.id} == {m.id for m in french if m.id}
    for message in english:
        if message.id:
            assert message.string == message.id


def test_french_pages_are_written_with_accents() -> None:
    # The pages are not SMS: French is written properly there.
    text = " ".join(
        s
        for m in load_pages_catalog("fr")
        if m.id
        for s in (m.string if isinstance(m.string, tuple) else (m.string,))
    )
    assert "é" in text and "à" in text
