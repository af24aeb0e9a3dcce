"""The texts a caller can receive (contract section 5) and the catalogs behind them."""

from __future__ import annotations

import re

import pytest
from babel.messages.catalog import Catalog
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from callerconnect import texts
from callerconnect.domain.sms_encoding import SmsText, encoding_of
from callerconnect.i18n import LANGUAGES, load_catalog, translator
from callerconnect.texts import BILINGUAL, TextKind, render_text

AGENCY = {"en": "Ottawa Police", "fr": "Police d'Ottawa"}
# Worst cases for the segment budget: the longest case number the CAD schema allows
# and a survey link with a 22-character token (128+ random bits, URL-safe base64).
# The default agency pattern refuses LONG_CASE; an agency may configure one as loose
# as LOOSE_PATTERN, and the budget must hold then too.
LONG_CASE = "OPS-2025-0000123456789-ABCDEFGHI"
LOOSE_PATTERN = r"[A-Za-z0-9 ./-]+"
LONG_URL = "https://callerconnect.example.ca/s/" + "Ab3_x-9ZqR7tLm2NpW8vKc"
NON_EMERGENCY = "613-236-1222"
assert len(LONG_CASE) == 32
assert len(LONG_URL) == 35 + 22

LANGUAGE_CASES = [
    pytest.param("en", id="en"),
    pytest.param("fr", id="fr"),
    pytest.param(None, id="bilingual"),
]
STOP_WORD = {"en": "Reply STOP", "fr": "Répondez ARRET"}
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def render(
    kind: TextKind,
    language: str | None,
    *,
    case_number: str | None = LONG_CASE,
    survey_url: str | None = LONG_URL,
) -> SmsText:
    """Render with the worst-case values unless a test says otherwise."""
    return render_text(
        kind,
        language,
        agency_name=AGENCY,
        case_number=case_number,
        survey_url=survey_url,
        non_emergency_number=NON_EMERGENCY,
        case_number_pattern=LOOSE_PATTERN,
    )


def halves(body: str, language: str | None) -> dict[str, str]:
    """The English and/or French sentence lines of a rendered body."""
    lines = body.split("\n")
    return {"en": lines[0], "fr": lines[1]} if language is None else {language: lines[0]}


# --- segment budget ---------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGE_CASES)
@pytest.mark.parametrize("kind", list(TextKind))
def test_every_text_fits_the_segment_budget_with_worst_case_values(
    kind: TextKind, language: str | None
) -> None:
    text = render(kind, language)

    limit = 2 if text.encoding == "GSM-7" else 3
    assert text.segments <= limit, (text.encoding, text.segments, len(text.body), text.body)


@pytest.mark.parametrize("language", LANGUAGE_CASES)
@pytest.mark.parametrize("kind", list(TextKind))
def test_every_text_is_gsm7_so_french_does_not_triple_the_cost(
    kind: TextKind, language: str | None
) -> None:
    text = render(kind, language)

    assert text.encoding == "GSM-7", [c for c in text.body if encoding_of(c) != "GSM-7"]


@pytest.mark.parametrize("kind", list(TextKind))
def test_english_texts_are_gsm7(kind: TextKind) -> None:
    assert render(kind, "en").encoding == "GSM-7"


@pytest.mark.parametrize("language", LANGUAGE_CASES)
@pytest.mark.parametrize("kind", list(TextKind))
def test_every_placeholder_is_filled(kind: TextKind, language: str | None) -> None:
    body = render(kind, language).body

    assert "%(" not in body
    assert "None" not in body


# --- language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "en"),
        ("fr", "fr"),
        (None, BILINGUAL),
        # Only the contract's exact codes pick one language; anything else is safest
        # read by everyone, so it gets both.
        ("", BILINGUAL),
        ("de", BILINGUAL),
        ("FR", BILINGUAL),
        ("fr-CA", BILINGUAL),
    ],
)
def test_language_of_the_text(language: str | None, expected: str) -> None:
    assert render(TextKind.reply_help, language).language == expected


@pytest.mark.parametrize("kind", list(TextKind))
def test_bilingual_text_is_english_then_french(kind: TextKind) -> None:
    english = render(kind, "en").body.split("\n")
    french = render(kind, "fr").body.split("\n")

    bilingual = render(kind, None).body.split("\n")

    assert bilingual[0] == english[0]
    assert bilingual[1] == french[0]
    assert bilingual[0].startswith("Ottawa Police")
    assert bilingual[1].startswith("Police d'Ottawa")


def test_bilingual_survey_link_is_written_once_on_the_last_line() -> None:
    body = render(TextKind.survey_invitation, None).body

    assert body.count(LONG_URL) == 1
    assert body.split("\n")[-1] == LONG_URL


def test_bilingual_delay_notice_quotes_the_case_number_once_with_both_labels() -> None:
    body = render(TextKind.delay_notice, None).body

    assert body.count(LONG_CASE) == 1
    assert body.split("\n")[-1] == f"Case/Dossier {LONG_CASE}"


@pytest.mark.parametrize(
    ("language", "last_line"),
    [("en", f"Case {LONG_CASE}"), ("fr", f"Dossier {LONG_CASE}")],
)
def test_delay_notice_quotes_the_case_number_in_its_language(language: str, last_line: str) -> None:
    assert render(TextKind.delay_notice, language).body.split("\n")[-1] == last_line


# --- required content -------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_confirmation_has_agency_case_number_and_opt_out_in_every_half(
    language: str | None,
) -> None:
    body = render(TextKind.confirmation, language).body

    for lang, half in halves(body, language).items():
        assert half.startswith(AGENCY[lang])
        assert LONG_CASE in half
        assert STOP_WORD[lang] in half


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_confirmation_has_no_link(language: str | None) -> None:
    body = render(TextKind.confirmation, language).body

    assert not LINK.search(body)


def test_confirmation_ignores_a_survey_url_passed_by_mistake() -> None:
    body = render(TextKind.confirmation, None, survey_url="https://example.org/x").body

    assert not LINK.search(body)


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_confirmation_says_the_call_was_received_and_police_will_follow_up(
    language: str | None,
) -> None:
    parts = halves(render(TextKind.confirmation, language).body, language)

    if "en" in parts:
        assert "we received your call" in parts["en"]
        assert "Police will follow up" in parts["en"]
    if "fr" in parts:
        assert "votre appel a bien été enregistré" in parts["fr"]
        assert "La police fera un suivi" in parts["fr"]


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_survey_invitation_has_agency_link_and_opt_out(language: str | None) -> None:
    body = render(TextKind.survey_invitation, language).body

    assert LONG_URL in body
    for lang, half in halves(body, language).items():
        assert half.startswith(AGENCY[lang])
        assert STOP_WORD[lang] in half


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_survey_invitation_says_it_is_voluntary(language: str | None) -> None:
    parts = halves(render(TextKind.survey_invitation, language).body, language)

    words = {"en": "voluntary", "fr": "facultatif"}
    for lang, half in parts.items():
        assert words[lang] in half


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_delay_notice_points_to_911_and_promises_no_time(language: str | None) -> None:
    body = render(TextKind.delay_notice, language).body

    for half in halves(body, language).values():
        assert "9-1-1" in half
    assert not re.search(r"\d+\s*(min|minutes?|hours?|heures?|h)\b", body, re.IGNORECASE)


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_delay_notice_without_a_case_number_has_no_case_line(language: str | None) -> None:
    body = render(TextKind.delay_notice, language, case_number=None).body

    assert "Case" not in body
    assert "Dossier" not in body
    assert body.count("\n") == (1 if language is None else 0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (TextKind.reply_opt_out, {"en": "Reply START", "fr": "Répondez DEBUT"}),
        (TextKind.reply_opt_in, STOP_WORD),
        (TextKind.reply_help, STOP_WORD),
    ],
)
@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_replies_name_the_keyword_that_undoes_them(
    kind: TextKind, expected: dict[str, str], language: str | None
) -> None:
    for lang, half in halves(render(kind, language).body, language).items():
        assert expected[lang] in half


@pytest.mark.parametrize("kind", [TextKind.reply_help, TextKind.reply_unmonitored])
@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_help_and_unmonitored_give_911_and_the_non_emergency_number(
    kind: TextKind, language: str | None
) -> None:
    body = render_text(kind, language, agency_name=AGENCY, non_emergency_number="613-555-0100")

    for half in halves(body.body, language).values():
        assert "9-1-1" in half
        assert "613-555-0100" in half


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_unmonitored_says_the_number_is_not_monitored(language: str | None) -> None:
    parts = halves(render(TextKind.reply_unmonitored, language).body, language)

    words = {"en": "not monitored", "fr": "pas surveillé"}
    for lang, half in parts.items():
        assert words[lang] in half


@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_opt_out_reply_says_no_more_texts(language: str | None) -> None:
    parts = halves(render(TextKind.reply_opt_out, language).body, language)

    words = {"en": "no more texts", "fr": "ne recevrez plus"}
    for lang, half in parts.items():
        assert words[lang] in half


def test_kind_may_be_given_as_its_string_value() -> None:
    assert render_text("reply_help", "en", agency_name=AGENCY) == render(TextKind.reply_help, "en")


def test_values_are_stripped_of_surrounding_whitespace() -> None:
    body = render(TextKind.confirmation, "en", case_number="  24-123456 \n").body

    assert "Case number 24-123456. " in body


# --- missing values ---------------------------------------------------------------


@pytest.mark.parametrize("case_number", [None, "", "   "])
def test_confirmation_needs_a_case_number(case_number: str | None) -> None:
    with pytest.raises(ValueError, match="case_number"):
        render_text(TextKind.confirmation, "en", agency_name=AGENCY, case_number=case_number)


@pytest.mark.parametrize("survey_url", [None, "", " "])
def test_survey_invitation_needs_a_link(survey_url: str | None) -> None:
    with pytest.raises(ValueError, match="survey_url"):
        render_text(TextKind.survey_invitation, None, agency_name=AGENCY, survey_url=survey_url)


@pytest.mark.parametrize(
    ("language", "agency_name"),
    [
        ("fr", {"en": "Ottawa Police"}),
        (None, {"en": "Ottawa Police"}),
        (None, {"en": "Ottawa Police", "fr": " "}),
        ("en", {"fr": "Police d'Ottawa"}),
    ],
)
def test_agency_name_is_needed_in_each_language_written(
    language: str | None, agency_name: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="agency_name"):
        render_text(TextKind.reply_help, language, agency_name=agency_name)


def test_an_agency_name_in_another_language_is_not_needed() -> None:
    text = render_text(TextKind.reply_help, "en", agency_name={"en": "Ottawa Police"})

    assert text.body.startswith("Ottawa Police:")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        render_text("birthday_wishes", "en", agency_name=AGENCY)


# --- catalogs ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=LANGUAGES)
def catalog(request: pytest.FixtureRequest) -> Catalog:
    language: str = request.param
    return load_catalog(language)


def entries(catalog: Catalog) -> list[tuple[str | None, str, str]]:
    out = []
    for message in catalog:
        if not message.id:
            continue  # the header
        assert isinstance(message.id, str), "no plural texts are expected in SMS"
        assert isinstance(message.string, str)
        out.append((message.context, message.id, message.string))
    return out


def test_catalog_has_entries(catalog: Catalog) -> None:
    assert entries(catalog)


def test_catalog_has_no_empty_or_fuzzy_entry(catalog: Catalog) -> None:
    for message in catalog:
        if not message.id:
            continue
        assert message.string, message.id
        assert not message.fuzzy, message.id


def test_catalog_placeholders_match_their_msgid(catalog: Catalog) -> None:
    for _context, msgid, msgstr in entries(catalog):
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        # Any other % would make the %-formatting fail at send time.
        assert "%" not in PLACEHOLDER.sub("", msgstr), msgstr


def test_catalog_flags_python_format_exactly_where_there_are_placeholders(
    catalog: Catalog,
) -> None:
    for message in catalog:
        if not message.id:
            continue
        assert message.python_format == bool(PLACEHOLDER.search(str(message.id))), message.id


def test_catalog_texts_stay_in_the_gsm7_alphabet(catalog: Catalog) -> None:
    for _context, _msgid, msgstr in entries(catalog):
        assert encoding_of(msgstr) == "GSM-7", [c for c in msgstr if encoding_of(c) != "GSM-7"]


def test_both_catalogs_hold_the_same_messages() -> None:
    english, french = (
        {(context, msgid) for context, msgid, _ in entries(load_catalog(lang))}
        for lang in ("en", "fr")
    )

    assert english == french


@pytest.mark.parametrize(("context", "msgid"), texts.msgids())
def test_every_message_the_texts_use_is_translated(context: str | None, msgid: str) -> None:
    for language in LANGUAGES:
        message = load_catalog(language).get(msgid, context=context)
        assert message is not None, (language, msgid)
        assert message.string and not message.fuzzy


def test_english_catalog_is_the_identity() -> None:
    for _context, msgid, msgstr in entries(load_catalog("en")):
        assert msgstr == msgid


def test_french_catalog_translates_every_message() -> None:
    for _context, msgid, msgstr in entries(load_catalog("fr")):
        assert msgstr != msgid


# --- translator -------------------------------------------------------------------


def test_translator_translates_from_the_po_file() -> None:
    assert translator("fr").pgettext("case number label", "Case") == "Dossier"
    assert translator("en").pgettext("case number label", "Case") == "Case"


def test_translator_is_built_once_per_language() -> None:
    assert translator("fr") is translator("fr")


@pytest.mark.parametrize("language", ["de", "", "FR", "fr_CA"])
def test_translator_refuses_a_language_without_a_catalog(language: str) -> None:
    with pytest.raises(ValueError, match="no catalog"):
        translator(language)


# --- case numbers from outside (red-team findings) ---------------------------------

UNSAFE_CASE_NUMBERS = [
    pytest.param("http://evil.co/x", id="url"),
    pytest.param("www.evil.co", id="www"),
    pytest.param("evil.co", id="bare-domain"),
    pytest.param("10.0.0.1", id="ip-address"),
    pytest.param("1\nReply YES to", id="newline"),
    pytest.param("26-10011 \U0001f6a8", id="emoji"),
    pytest.param("26-1001é", id="accent"),
    pytest.param("CASE", id="no-digit"),
    pytest.param("26-" + "1" * 30, id="too-long"),
]


@pytest.mark.parametrize("case_number", UNSAFE_CASE_NUMBERS)
def test_a_case_number_that_cannot_be_quoted_is_refused(case_number: str) -> None:
    assert texts.quotable_case_number(case_number) is None


@pytest.mark.parametrize("case_number", UNSAFE_CASE_NUMBERS)
@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_a_confirmation_never_quotes_an_unsafe_case_number(
    case_number: str, language: str | None
) -> None:
    with pytest.raises(ValueError, match="case_number") as caught:
        render(TextKind.confirmation, language, case_number=case_number)

    assert case_number not in str(caught.value)


@pytest.mark.parametrize("case_number", UNSAFE_CASE_NUMBERS)
@pytest.mark.parametrize("language", LANGUAGE_CASES)
def test_a_delay_notice_leaves_an_unsafe_case_number_out(
    case_number: str, language: str | None
) -> None:
    text = render(TextKind.delay_notice, language, case_number=case_number)

    assert text == render(TextKind.delay_notice, language, case_number=None)


@pytest.mark.parametrize(
    ("given", "quoted"),
    [("26–10011", "26-10011"), ("26—10011", "26-10011"), ("26−10011", "26-10011")],
)
def test_unicode_dashes_are_quoted_as_hyphens_so_the_text_stays_gsm7(
    given: str, quoted: str
) -> None:
    text = render(TextKind.confirmation, None, case_number=given)

    assert f"Case number {quoted}." in text.body
    assert text.encoding == "GSM-7"
    assert text.segments <= 2


def test_the_longest_quotable_case_number_is_the_one_the_budget_is_proven_with() -> None:
    assert len(LONG_CASE) == texts.MAX_CASE_NUMBER
    assert texts.quotable_case_number(LONG_CASE) == LONG_CASE
    assert texts.quotable_case_number(LONG_CASE + "0") is None


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9]{1,12}(?:[-/. ][A-Za-z0-9]{1,12}){0,4}", fullmatch=True))
def test_every_quotable_case_number_keeps_every_text_within_two_gsm7_segments(
    candidate: str,
) -> None:
    case_number = texts.quotable_case_number(candidate)
    assume(case_number is not None)
    assert case_number is not None
    for language in ("en", "fr", None):
        for kind in (TextKind.confirmation, TextKind.delay_notice):
            text = render(kind, language, case_number=case_number)
            assert text.encoding == "GSM-7"
            assert text.segments <= 2, (kind, language, case_number)
            assert not LINK.search(text.body)
            assert not re.search(r"[A-Za-z0-9-]+\.[A-Za-z]", case_number)  # no domain
            assert text.body.count("\n") == render(kind, language).body.count("\n")
