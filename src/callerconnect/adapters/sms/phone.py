"""Phone numbers: one canonical form (E.164) in, one masked form out.

Every part of callerconnect that stores, compares or sends to a phone number uses
:func:`normalize_phone` first, so ``613-555-0142`` from a CAD and ``+16135550142`` from
Twilio's inbound webhook are the same caller (an opt-out must match). Everything that
logs or prints a number uses :func:`mask_phone`.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["InvalidPhone", "mask_phone", "normalize_phone"]

# Longer input is not a phone number; bounding it keeps the parser's work small.
_MAX_INPUT_LENGTH = 64
_TEL_SCHEME = re.compile(r"^\s*tel:", re.IGNORECASE)
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Digits the mask keeps at the end; the rest of the subscriber number is hidden.
_VISIBLE_TAIL = 4
# A mask that hides fewer digits than this would all but give the number away.
_MIN_HIDDEN = 3


class InvalidPhone(ValueError):
    """The text is not a phone number we can text.

    The message says why, never which number: it ends up in logs and dead letters.
    """


def normalize_phone(raw: str, default_region: str = "CA") -> str:
    """Return ``raw`` in E.164 (``+16135550142``) or raise :class:`InvalidPhone`.

    Accepts the forms a CAD or EIDO feed uses: ``613-555-0142``, ``(613) 555-0142``,
    ``1-613-555-0142``, ``+1 (613) 555-0199``, ``6135550177``, ``tel:+1-613-555-0142``.
    A number without a country code is read in ``default_region``.

    Rejected on purpose:

    * letters (vanity numbers, ``ext``/``x`` extensions, RFC 3966 parameters): a caller's
      own phone has none, and guessing could text a stranger;
    * extensions in any notation: the number reaches a switchboard, not the caller;
    * numbers that ``phonenumbers`` does not consider valid (too short, unassigned area
      code). This fails closed: a text not sent beats a text to the wrong person. Keep
      ``phonenumbers`` current so new area codes are known.
    """
    if not isinstance(raw, str):
        raise InvalidPhone("phone number must be text")
    text = _TEL_SCHEME.sub("", raw, count=1).strip()
    if not text:
        raise InvalidPhone("phone number is empty")
    if len(text) > _MAX_INPUT_LENGTH:
        raise InvalidPhone("phone number is too long")
    if any(ch.isalpha() for ch in text):
        raise InvalidPhone("phone number contains letters")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        # ``from None``: the library's exception is noise here and tracebacks get logged.
        raise InvalidPhone("not a phone number") from None
    if number.extension:
        raise InvalidPhone("phone number has an extension")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """Mask an E.164 number for logs and screens: ``+16135550142`` → ``+1613***0142``.

    North American numbers keep the country and area code (useful for spotting a
    regional problem) and the last four digits. Other countries keep only the country
    code and the last four, since their area codes vary in length. Anything that is not
    a plausible E.164 number — including raw, un-normalized input — becomes ``***``:
    this function is called on logging paths and must never raise or leak.
    """
    if not isinstance(e164, str) or not _E164.match(e164):
        return "***"
    digits = e164[1:]
    if digits.startswith("1"):
        if len(digits) != 11:
            return "***"
        return f"+1{digits[1:4]}***{digits[-_VISIBLE_TAIL:]}"
    try:
        country_code = phonenumbers.parse(e164, None).country_code
    except phonenumbers.NumberParseException:
        return "***"
    prefix = str(country_code)
    hidden = len(digits) - len(prefix) - _VISIBLE_TAIL
    if not digits.startswith(prefix) or hidden < _MIN_HIDDEN:
        return "***"
    return f"+{prefix}***{digits[-_VISIBLE_TAIL:]}"
