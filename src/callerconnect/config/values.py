"""The value types of the settings: how each kind of value is written and checked.

Durations (``90s``, ``15m``, ``1h30m``), priorities, secrets, the quiet-hours window,
base URLs, sender numbers, agency ids, time zones, log levels and database URLs. Each is
an ``Annotated`` type whose validator raises ValueError with a message that says what a
good value looks like; the loader adds the key, its variable and the value's origin.
No message here ever contains a secret's value or a database URL.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, PlainValidator, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from callerconnect.domain.policy import QuietHours

MIN_SECRET_LENGTH = 16
"""The secret key, old secret keys and intake keys must be at least this long (32 random
bytes, as :data:`GENERATE_HINT` makes, are recommended): a short one can be guessed,
and every command refuses to load a configuration that holds one."""

GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


# --- durations ---------------------------------------------------------------------------

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_DURATION_HINT = (
    "write whole numbers with the units d, h, m, s (in that order), such as 90s, 15m, 2h, 7d "
    "or 1h30m"
)


def parse_duration(text: str) -> timedelta:
    """Read a duration written ``90s``, ``15m``, ``2h``, ``7d`` or combined (``1h30m``).

    A unit is required: a bare ``10`` is rejected rather than guessed, because a wrong
    guess (seconds or minutes?) in a setting like a delay threshold silently changes which
    callers get texted and when. A TOML integer is different, its type is explicit, and
    the settings models read it as seconds. Negative durations are rejected too.

    Raises ValueError with the offending text and the accepted form.
    """
    stripped = text.strip()
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None:
        if stripped.isdigit():
            raise ValueError(
                f"{text!r} has no unit; write {stripped}s, {stripped}m, {stripped}h or {stripped}d"
            )
        if stripped.startswith("-"):
            raise ValueError(f"{text!r}: a duration cannot be negative; {_DURATION_HINT}")
        raise ValueError(f"{text!r} is not a duration; {_DURATION_HINT}")
    seconds = sum(
        int(amount) * factor
        for amount, (_, factor) in zip(match.groups(), _DURATION_UNITS, strict=True)
        if amount
    )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long to be a duration") from None


def format_duration(duration: timedelta) -> str:
    """Write ``duration`` the way :func:`parse_duration` reads it: ``1h30m``, ``7d``, ``0s``.

    Sub-second parts are dropped (settings hold whole seconds; elsewhere this is for
    display). Raises ValueError for a negative duration, which has no written form.
    """
    if duration < timedelta(0):
        raise ValueError(f"cannot write a negative duration ({duration})")
    remaining = duration.days * 86_400 + duration.seconds
    parts: list[str] = []
    for unit, factor in _DURATION_UNITS:
        amount, remaining = divmod(remaining, factor)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def _to_duration(value: object) -> object:
    """Accept a written duration. A bare TOML number is refused like a bare string: read
    as seconds, ``survey_after_clear = 15`` would quietly mean 15 seconds to someone who
    meant minutes."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"{value} has no unit; write the duration as a string with one, such as "
            f'"{value}m" (minutes), "{value}s", "{value}h" or "{value}d"'
        )
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"expected a duration; {_DURATION_HINT}")


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"a duration cannot be negative; {_DURATION_HINT}")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than 0s; {_DURATION_HINT}")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A length of time of zero or more, written ``90s``/``15m``/``2h``/``7d``/``1h30m``."""

PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A :data:`Duration` that must be longer than zero."""


# --- small value types ------------------------------------------------------------------


def _check_priority(value: object) -> object:
    # Runs before pydantic's int parsing so that a bad mapping key from the environment
    # (``..._DELAY_NOTICE_AFTER__X``) gets this message rather than a generic one.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9:
        raise ValueError(
            f"{value!r} is not a priority; priorities are whole numbers from 1 (most urgent) to 9"
        )
    return value


Priority = Annotated[int, BeforeValidator(_check_priority)]
"""An agency priority, 1 (most urgent) to 9."""


def _not_blank(value: SecretStr) -> SecretStr:
    # The message must not contain the value: it ends up in logs and terminals.
    if not value.get_secret_value().strip():
        raise ValueError(f"empty; {GENERATE_HINT}")
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank)]
"""A non-empty secret string; hidden in repr and error messages."""


def _long_enough(value: SecretStr) -> SecretStr:
    # Length only, never the value: the message ends up in logs and terminals.
    if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"shorter than {MIN_SECRET_LENGTH} characters; {GENERATE_HINT}")
    return value


StrongSecret = Annotated[SecretStr, AfterValidator(_not_blank), AfterValidator(_long_enough)]
"""A secret this service itself checks against guessing (the secret key, intake keys):
at least :data:`MIN_SECRET_LENGTH` characters."""


class Sensitive:
    """Marks a plain-``str`` field whose value must not be echoed in error messages."""


SENSITIVE = Sensitive()


# --- quiet hours ------------------------------------------------------------------------
# The window is the domain's (domain/policy.py); the setting is its written form,
# ``HH:MM-HH:MM`` or ``off``, with no time zone: the zone is the agency's ``timezone``,
# which bootstrap gives the window when it builds the policy.


def _to_quiet_hours(value: object) -> QuietHours | None:
    if value is None:
        return None
    if isinstance(value, QuietHours):
        return value.written()
    if isinstance(value, str):
        return None if value.strip().lower() == "off" else QuietHours.parse(value)
    raise ValueError("expected a window such as 21:00-08:00, or off")


def _quiet_hours_text(value: QuietHours | None) -> str:
    return "off" if value is None else str(value)


QuietHoursSetting = Annotated[
    QuietHours | None,
    PlainValidator(_to_quiet_hours),
    PlainSerializer(_quiet_hours_text, return_type=str, when_used="json"),
]
"""Written ``HH:MM-HH:MM`` (may wrap midnight) or ``off`` (``None``)."""

QUIET_HOURS_DEFAULT = QuietHours(time(21, 0), time(8, 0))


# --- addresses, numbers, names ----------------------------------------------------------


def _http_base_url(value: str) -> str:
    """An absolute http(s) URL without query or fragment, trailing slash removed, so that
    ``f"{base}/s/{token}"`` is always well formed."""
    stripped = value.strip()
    try:
        parts = urlsplit(stripped)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not parts.query
            and not parts.fragment
        )
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            f"{value!r} is not an http(s) base URL; write one like https://callerconnect.example.org"
        )
    return stripped.rstrip("/")


HttpBaseUrl = Annotated[str, AfterValidator(_http_base_url)]


def _command_status(value: object) -> object:
    """An SMPP command_status, written in hex (``0x64``) or decimal; never 0 (ESME_ROK
    would acknowledge what was not recorded)."""
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"{value!r} is not an SMPP command_status such as 0x64") from None
    if isinstance(value, int) and not 0 < value <= 0xFFFFFFFF:
        raise ValueError("must be a non-zero SMPP command_status such as 0x64 (0 acknowledges)")
    return value


SmppCommandStatus = Annotated[int, BeforeValidator(_command_status)]

_SENDER_RE = re.compile(r"\+[1-9]\d{6,14}|\d{3,8}")


def _sender_number(value: str) -> str:
    if _SENDER_RE.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not a sender number; write it in E.164 form such as "
            "+13438036032, or a short code such as 123456"
        )
    return value


SenderNumber = Annotated[str, AfterValidator(_sender_number)]
"""The number texts come from: E.164 (``+13438036032``) or a short code."""

_AGENCY_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def _agency_id(value: str) -> str:
    if _AGENCY_ID_RE.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not an agency id; use lower-case letters, digits, - and _ "
            "(up to 63), such as ottawa-police"
        )
    return value


AgencyId = Annotated[str, AfterValidator(_agency_id)]


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as America/Toronto"
        ) from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]
"""An IANA time zone name, such as ``America/Toronto``."""

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"{value!r} is not a log level; use one of {', '.join(_LOG_LEVELS)}")
    return level


LogLevel = Annotated[str, AfterValidator(_log_level)]
"""A logging level name, upper-cased once loaded."""


def _database_url(value: str) -> str:
    # The URL may carry a password: messages show the driver at most, never the URL.
    example = "sqlite:///callerconnect.db or postgresql+psycopg://user:password@host/dbname"
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL; write one like {example}") from None
    try:
        url.get_dialect()
    except ArgumentError:
        raise ValueError(
            f"unknown database driver {url.drivername!r}; write a URL like {example}"
        ) from None
    return value


DatabaseUrl = Annotated[str, SENSITIVE, AfterValidator(_database_url)]
"""A SQLAlchemy URL whose driver is installed; never echoed (it may hold a password)."""
