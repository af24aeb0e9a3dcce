"""Encoding and segment counting against GSM 03.38 / 3GPP TS 23.038 and TS 23.040."""

from __future__ import annotations

import dataclasses

import pytest

from callerconnect.domain.sms_encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsText,
    encoding_of,
    segment_count,
)

EMOJI = "\U0001f600"  # outside the BMP: one character, two UTF-16 code units


def test_alphabet_tables_have_the_sizes_of_the_standard() -> None:
    # 128 code points less the escape, and the ten extension characters of the
    # default extension table; no character may be in both.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "\x1b" not in GSM7_BASIC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "GSM-7"),
        ("Ottawa Police: call 9-1-1.", "GSM-7"),
        ("@£$¥¤§¿¡_\r\n", "GSM-7"),
        ("é è ù ì ò à É Ç Ä Ö Ñ Ü Å Æ Ø ß", "GSM-7"),
        ("Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ", "GSM-7"),
        ("Police d'Ottawa", "GSM-7"),  # the straight apostrophe
        ("^{}\\[~]|", "GSM-7"),  # extension table
        ("€", "GSM-7"),  # extension table
        ("\f", "GSM-7"),  # form feed is in the extension table
        ("ç", "UCS-2"),  # only the capital Ç is in the alphabet
        ("È", "UCS-2"),  # only the capital É is
        ("À", "UCS-2"),
        ("ê", "UCS-2"),
        ("â", "UCS-2"),
        ("ô", "UCS-2"),
        ("î", "UCS-2"),
        ("û", "UCS-2"),
        ("ë", "UCS-2"),
        ("ï", "UCS-2"),
        ("œ", "UCS-2"),
        ("Police d’Ottawa", "UCS-2"),  # typographic apostrophe
        ("Police :\u00a0ici", "UCS-2"),  # non-breaking space
        ("`", "UCS-2"),
        ("\t", "UCS-2"),
        ("α", "UCS-2"),  # only the Greek capitals that differ from Latin ones
        ("\x1b", "UCS-2"),  # the escape on its own is not a character
        (EMOJI, "UCS-2"),
        ("a" * 200 + "ç", "UCS-2"),  # one character is enough
    ],
)
def test_encoding_of(text: str, expected: str) -> None:
    assert encoding_of(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", 1, id="empty"),
        pytest.param("a", 1, id="gsm-1"),
        pytest.param("a" * 160, 1, id="gsm-160"),
        pytest.param("a" * 161, 2, id="gsm-161"),
        pytest.param("a" * 306, 2, id="gsm-306"),
        pytest.param("a" * 307, 3, id="gsm-307"),
        pytest.param("a" * 459, 3, id="gsm-459"),
        pytest.param("a" * 460, 4, id="gsm-460"),
        # Extension characters cost two septets each.
        pytest.param("€" * 80, 1, id="gsm-80-euros-160-septets"),
        pytest.param("€" * 81, 2, id="gsm-81-euros-162-septets"),
        pytest.param("a" * 159 + "€", 2, id="gsm-159+euro-161-septets"),
        pytest.param("a" * 158 + "€", 1, id="gsm-158+euro-160-septets"),
        # An escape sequence is never split: 152 + 2 does not fit in 153, so the euro
        # opens part two, which then overflows. Naive ceil(306 / 153) would say 2.
        pytest.param("a" * 152 + "€" + "a" * 152, 3, id="gsm-euro-straddles-boundary"),
        pytest.param("a" * 153 + "€" + "a" * 151, 2, id="gsm-euro-right-after-boundary"),
        pytest.param("a" * 151 + "€" + "a" * 153, 2, id="gsm-euro-ends-part-one"),
        # A 153-septet part holds only 76 two-septet escapes, so 306 septets of them
        # need three parts.
        pytest.param("[" * 152, 2, id="gsm-152-brackets-304-septets"),
        pytest.param("[" * 153, 3, id="gsm-153-brackets-306-septets"),
        # UCS-2: 70 code units single, 67 per part.
        pytest.param("ç" * 70, 1, id="ucs2-70"),
        pytest.param("ç" * 71, 2, id="ucs2-71"),
        pytest.param("ç" * 134, 2, id="ucs2-134"),
        pytest.param("ç" * 135, 3, id="ucs2-135"),
        pytest.param("ç" * 201, 3, id="ucs2-201"),
        pytest.param("ç" * 202, 4, id="ucs2-202"),
        pytest.param("a" * 69 + "ç", 1, id="ucs2-one-char-makes-it-all-ucs2"),
        # Characters outside the BMP are surrogate pairs: two code units each.
        pytest.param(EMOJI * 35, 1, id="ucs2-35-emoji-70-units"),
        pytest.param(EMOJI * 35 + "a", 2, id="ucs2-35-emoji+1-71-units"),
        pytest.param(EMOJI * 36, 2, id="ucs2-36-emoji-72-units"),
        # A surrogate pair is never split: 66 + 2 does not fit in 67.
        pytest.param("ç" * 66 + EMOJI + "ç" * 66, 3, id="ucs2-pair-straddles-boundary"),
        pytest.param("ç" * 67 + EMOJI + "ç" * 65, 2, id="ucs2-pair-right-after-boundary"),
        pytest.param("ç" * 65 + EMOJI + "ç" * 67, 2, id="ucs2-pair-ends-part-one"),
        # 67 emoji are 134 units, but only 33 fit in a 67-unit part.
        pytest.param(EMOJI * 67, 3, id="ucs2-67-emoji-need-three-parts"),
        pytest.param(EMOJI * 66, 2, id="ucs2-66-emoji-fit-two-parts"),
    ],
)
def test_segment_count(text: str, expected: int) -> None:
    assert segment_count(text) == expected


def test_sms_text_of_measures_the_body() -> None:
    text = SmsText.of("Reply STOP to opt out / Répondez ARRET", "en+fr")

    assert text == SmsText(
        body="Reply STOP to opt out / Répondez ARRET",
        language="en+fr",
        encoding="GSM-7",
        segments=1,
    )


def test_sms_text_of_a_ucs2_body() -> None:
    text = SmsText.of("ç" * 71, "fr")

    assert (text.encoding, text.segments) == ("UCS-2", 2)


def test_sms_text_is_immutable() -> None:
    text = SmsText.of("hello", "en")

    with pytest.raises(dataclasses.FrozenInstanceError):
        text.body = "changed"  # type: ignore[misc]
