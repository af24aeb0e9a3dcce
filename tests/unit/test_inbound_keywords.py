"""Callers' texts: keywords (contract section 5.4) and words of danger. Pure functions."""

from __future__ import annotations

import pytest

from callerconnect.domain.inbound import DangerTerms, Keyword, classify, fold
from callerconnect.service.inbound import bundled_danger_terms, reply_key, reply_kind_of


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop \n", Keyword.OPT_OUT),
        ("STOP.", Keyword.OPT_OUT),
        ("ARRET", Keyword.OPT_OUT),
        ("ARRÊT", Keyword.OPT_OUT),
        ("arrêt", Keyword.OPT_OUT),
        (" Arrêt! ", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("Cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("STOP?", Keyword.OPT_OUT),
        ("\u200bSTOP", Keyword.OPT_OUT),  # a zero-width space slipped in by a keyboard
        ("ST\u200dOP", Keyword.OPT_OUT),
        ("«ARRÊT»", Keyword.OPT_OUT),
        ('"stop"', Keyword.OPT_OUT),
        ("¡stop!", Keyword.OPT_OUT),
        ("ＳＴＯＰ", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("début", Keyword.OPT_IN),
        ("DEBUT", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("aide", Keyword.HELP),
        ("Info", Keyword.HELP),
        ("yes", Keyword.OTHER),  # an answer far more often than an opt-in
        ("stop it", Keyword.OTHER),
        ("please stop", Keyword.OTHER),
        ("help me", Keyword.OTHER),
        ("", Keyword.OTHER),
        ("S T O P", Keyword.OTHER),
        ("STOP?!?", Keyword.OPT_OUT),
        ("?", Keyword.OTHER),
        ("stop, please", Keyword.OTHER),
        ("STOP" * 20, Keyword.OTHER),
    ],
)
def test_keyword_is_the_whole_text_in_any_case_and_accent(body: str, keyword: Keyword) -> None:
    assert classify(body) == keyword


def test_fold_drops_case_and_accents() -> None:
    assert fold("ARRÊT À L'AIDE Début") == "arret a l'aide debut"


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("please HELP me!!", ["help me", "please help"]),
        ("Help with me", []),
        ("helpme", []),
        ("He has a KNIFE.", ["knife"]),
        ("knives everywhere", ["knives"]),
        ("he stabbed him", ["stab*"]),
        ("À L'AIDE", ["à l'aide"]),
        ("a l aide svp", ["à l'aide"]),
        ("a l’aide", ["à l'aide"]),  # typographic apostrophe
        ("je suis BLESSÉE", ["blessé*"]),
        ("Au secours", ["au secours"]),
        ("thanks, all good", []),
        ("see you Tuesday", []),
        ("I was fired today", []),
    ],
)
def test_danger_terms_match_whole_words_ignoring_case_and_accents(
    body: str, found: list[str]
) -> None:
    terms = DangerTerms(
        ["help me", "please help", "knife", "knives", "stab*", "à l'aide", "blessé*",
         "au secours", "fire", "tue"]
    )  # fmt: skip
    assert terms.find(body) == found


def test_a_term_without_a_word_is_refused() -> None:
    with pytest.raises(ValueError, match="no word"):
        DangerTerms(["knife", " * "])


def test_bundled_list_covers_english_and_french() -> None:
    terms = bundled_danger_terms()
    assert len(terms) > 50
    for body in ("help me", "gun", "suicide", "AU SECOURS", "il a une arme", "j'ai peur"):
        assert terms.find(body), body
    assert terms.find("thank you, the officer was great") == []


def test_reply_keys_carry_their_kind() -> None:
    key = reply_key("ottawa", "opt_out", "ab" * 32, "SM" + "1" * 32)
    assert reply_kind_of(key) == "opt_out"
    assert reply_kind_of("ottawa:I-1:confirmation:0") is None
    assert len(key) <= 300
