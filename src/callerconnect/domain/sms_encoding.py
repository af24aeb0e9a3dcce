"""How a text travels over SMS: its encoding and how many segments it is billed as.

The rules follow 3GPP TS 23.038 (formerly GSM 03.38) for the alphabets and
3GPP TS 23.040 for concatenation:

* A text made only of characters from the GSM 7-bit default alphabet, or its
  extension table, is sent as GSM-7. Each default character is one septet; each
  extension character is two (the escape 0x1B followed by the character).
  One segment holds 160 septets; a concatenated text loses 7 septets per part to
  the user-data header, leaving 153.
* Anything else is sent as UCS-2 (in practice UTF-16): 70 code units in a single
  segment, 67 per part once concatenated. A character outside the Basic
  Multilingual Plane (most emoji) is a surrogate pair, two code units.

Handsets reassemble a concatenated text part by part, so a part must never end in
the middle of an escape sequence or a surrogate pair; senders move the whole
character to the next part, which can cost an extra segment. ``segment_count``
packs greedily in the same way, so it matches what a provider bills.

Standard library only: this is domain code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# 3GPP TS 23.038 (GSM 03.38) section 6.2.1, default alphabet, code points 0x00-0x7F in
# order (eight rows of sixteen). 0x1B is the escape to the extension table, not a
# character, so it is kept in the table for position and removed from the set.
# Note 0x09 is the CAPITAL C with cedilla: lower-case "ç" is not in the alphabet,
# which is why French wording in the catalogs avoids it.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_BASIC: frozenset[str] = frozenset(_GSM7_BASIC_TABLE) - {"\x1b"}

# 3GPP TS 23.038 (GSM 03.38) section 6.2.1.1, default extension table: form feed,
# ^ { } \ [ ~ ] | and the euro sign. Each is sent as ESC + character, two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE_SEPTETS = 160
GSM7_PART_SEPTETS = 153  # 160 minus the 6-octet concatenation header (7 septets)
UCS2_SINGLE_UNITS = 70
UCS2_PART_UNITS = 67  # 70 minus the 6-octet concatenation header (3 code units)


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 alphabet or extension table."""
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            return "UCS-2"
    return "GSM-7"


def _costs(text: str, encoding: Encoding) -> list[int]:
    """Cost of each character in the unit of its encoding (septets or UTF-16 units).

    A character is the indivisible unit: its escape or surrogate pair travels together.
    """
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def segment_count(text: str) -> int:
    """Number of SMS segments the text is sent (and billed) as; an empty text is one."""
    encoding = encoding_of(text)
    costs = _costs(text, encoding)
    single, part = (
        (GSM7_SINGLE_SEPTETS, GSM7_PART_SEPTETS)
        if encoding == "GSM-7"
        else (UCS2_SINGLE_UNITS, UCS2_PART_UNITS)
    )
    if sum(costs) <= single:
        return 1
    # Greedy packing: a character that does not fit whole in the current part opens
    # the next one, exactly as a sender that refuses to split escapes and pairs does.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts += 1
            used = 0
        used += cost
    return parts


@dataclass(frozen=True)
class SmsText:
    """A rendered text with what the network will make of it.

    ``language`` is ``"en"``, ``"fr"`` or ``"en+fr"`` for a bilingual text.
    """

    body: str
    language: str
    encoding: Encoding
    segments: int

    @classmethod
    def of(cls, body: str, language: str) -> SmsText:
        """Measure ``body`` once, so encoding and segments always agree with it."""
        return cls(
            body=body,
            language=language,
            encoding=encoding_of(body),
            segments=segment_count(body),
        )
