"""Configuration: one TOML file plus ``CALLERCONNECT_*`` environment variables, read once.

This is the operator-facing surface described in section 3 of the external contracts.
:func:`load_settings` layers three sources, each overriding the one before:

1. the defaults written on the models below (the contract's table, plus a few extensions);
2. the TOML file (``--config PATH``, else ``./callerconnect.toml`` when it exists);
3. environment variables: ``CALLERCONNECT_`` + the key path in upper case joined by ``__``
   (``CALLERCONNECT_SMS__PROVIDER=twilio``); a list or a whole table is written as JSON.

Layers are merged key by key, tables *and* mappings alike, so setting
``CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3=45m`` keeps the default threshold of
priority 4. An empty environment variable counts as unset (deployment templates often
export ``VAR=`` for "not configured"). Every key in the file and every ``CALLERCONNECT_*``
variable that names no setting is an error with the closest real name
(``config_keys.py``), so a typo cannot silently fall back to a default; only the test
suite's and benchmarks' own variables (``config_keys.RESERVED_ENV_PREFIXES``) share the
prefix without being settings.

Every problem becomes a :class:`ConfigError` naming the dotted key, its environment
variable, where the bad value came from and what a good one looks like. Secret values and
the database URL (which may hold a password) are never echoed.

Reading sources is deliberately kept out of :class:`Settings` itself: ``Settings(...)`` is
a plain validating constructor that never looks at the process environment, which keeps
tests and the demo hermetic.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from callerconnect.config_keys import unknown_keys
from callerconnect.domain.case_numbers import (
    DEFAULT_CASE_NUMBER_PATTERN,
    compile_case_number_pattern,
)

ENV_PREFIX = "CALLERCONNECT_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("callerconnect.toml")
"""Read when no path is given, relative to the working directory, only if it exists."""

MIN_SECRET_LENGTH = 16
"""The secret key, old secret keys and intake keys must be at least this long (32 random
bytes, as :data:`_GENERATE_HINT` makes, are recommended): a short one can be guessed,
and every command refuses to load a configuration that holds one."""

_BUNDLED_CALL_TYPES = Path(__file__).parent / "data" / "call-types.csv"
_GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class ConfigError(Exception):
    """The configuration is unusable; start-up stops with this message.

    ``key`` is the dotted path of the (first) offending setting, such as
    ``policy.delay_notice_after.3``, and ``env_var`` the variable that sets it
    (``CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3``). Both are ``None`` when the problem
    is not one key's: the file is missing, unreadable or not TOML. When validation finds several
    problems, the message lists them all, one a line, and ``keys`` holds every key.
    Callers branch on these attributes, not on the message text.
    """

    def __init__(self, key: str | None, message: str, *, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.key = key
        self.env_var = _env_var(key) if key is not None else None
        self.keys = keys or ((key,) if key is not None else ())


def _env_var(key: str) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in key.split("."))


def _describe(key: str, text: str, origin: str | None = None) -> str:
    """One problem line: the key, its environment variable, where the value came from."""
    where = f", value from {origin}" if origin else ""
    return f"{key} (environment variable {_env_var(key)}{where}): {text}"


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
        raise ValueError(f"empty; {_GENERATE_HINT}")
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank)]
"""A non-empty secret string; hidden in repr and error messages."""


def _long_enough(value: SecretStr) -> SecretStr:
    # Length only, never the value: the message ends up in logs and terminals.
    if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"shorter than {MIN_SECRET_LENGTH} characters; {_GENERATE_HINT}")
    return value


StrongSecret = Annotated[SecretStr, AfterValidator(_not_blank), AfterValidator(_long_enough)]
"""A secret this service itself checks against guessing (the secret key, intake keys):
at least :data:`MIN_SECRET_LENGTH` characters."""


class _Sensitive:
    """Marks a plain-``str`` field whose value must not be echoed in error messages."""


_SENSITIVE = _Sensitive()

_HHMM_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_hhmm(text: str) -> time | None:
    match = _HHMM_RE.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The configured quiet hours: a daily window in local time (``Settings.timezone``)
    during which delay notices and survey invitations wait.

    A window whose end comes before its start wraps past midnight, as the default
    ``21:00-08:00`` does. Only the written form lives here; the domain policy applies the
    window (start inclusive, end exclusive) with the time zone.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(
                "quiet hours start and end at the same time; write a window such as "
                "21:00-08:00, or off to disable them"
            )

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``HH:MM-HH:MM``; raises ValueError saying what was expected."""
        start_text, _, end_text = text.partition("-")
        start, end = _parse_hhmm(start_text), _parse_hhmm(end_text)
        if start is None or end is None:
            raise ValueError(
                f"{text!r} is not a window; write HH:MM-HH:MM, such as 21:00-08:00, or off"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _to_quiet_hours(value: object) -> QuietHours | None:
    if value is None or isinstance(value, QuietHours):
        return value
    if isinstance(value, str):
        return None if value.strip().lower() == "off" else QuietHours.parse(value)
    raise ValueError("expected a window such as 21:00-08:00, or off")


def _quiet_hours_text(value: QuietHours | None) -> str:
    return "off" if value is None else str(value)


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


# --- settings models --------------------------------------------------------------------


class _Section(BaseModel):
    """Base of every settings table: immutable, an unknown key is an error, and surrounding
    blanks are dropped from strings (a pasted credential often carries some)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )


def _combination_error(message: str, *subkeys: str) -> PydanticCustomError:
    """An error about keys *inside* the model being validated.

    A model-level validator can only report at the model's own location; ``subkeys``
    carries the exact keys so the ConfigError can name them (``sms.twilio.account_sid``).
    """
    return PydanticCustomError("settings_combination", message, {"subkeys": subkeys})


class LocalizedName(_Section):
    """A name in both official languages, as the texts quote it."""

    en: str = Field("Ottawa Police", min_length=1)
    fr: str = Field("Police d'Ottawa", min_length=1)


def _at_most_a_minute(value: timedelta) -> timedelta:
    if value > timedelta(minutes=1):
        raise ValueError("must be at most 1m: a CAD clock that drifts further must be fixed")
    return value


class IntakeSettings(_Section):
    """CAD intake API."""

    api_keys: list[StrongSecret] = Field(default_factory=list, examples=[["<key-1>", "<key-2>"]])
    """Accepted bearer keys; ``serve`` refuses to start without one (see
    :meth:`Settings.require_intake_keys`). Several keys allow rotation without downtime."""
    max_batch: int = Field(1000, ge=1, examples=[1000])
    """Most events in one ``{"events": [...]}`` body; the contract promises 1,000."""
    max_body_bytes: int = Field(5_000_000, ge=1, examples=[5_000_000])
    """Larger request bodies are refused before parsing."""
    case_number_pattern: str = Field(DEFAULT_CASE_NUMBER_PATTERN, min_length=1)
    """A Python regular expression every case number must match as a whole (texts quote
    it); the default is strict (domain/case_numbers.py, docs/intake.md)."""

    @field_validator("case_number_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_case_number_pattern(value)
        except re.error as error:
            raise ValueError(f"is not a regular expression: {error}") from None
        return value

    max_event_bytes: int = Field(65_536, ge=1, examples=[65_536])
    """Largest event, as compact UTF-8 JSON; a larger one is rejected (a dead letter keeps
    its first 64 KiB), one by one in a batch."""
    max_clock_skew: Annotated[Duration, AfterValidator(_at_most_a_minute)] = timedelta(seconds=5)
    """How far ahead of its receipt an event's ``occurred_at`` may be (a CAD clock's
    drift). An event stamped further ahead is refused (422, kept as a dead letter): a
    time from the future would make a genuine later change look older. Within it a real
    change can still lose to a benign value (the fold then fails closed), so keep it to
    seconds; at most 1m."""


class TwilioSettings(_Section):
    """Twilio REST API credentials; required when ``sms.provider`` is ``twilio``."""

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    api_base: HttpBaseUrl = "https://api.twilio.com"
    """Base URL of the REST API, so a Twilio-compatible gateway can be used."""
    timeout: PositiveDuration = timedelta(seconds=10)


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


class SmppSettings(_Section):
    """SMPP 3.4 transceiver bind; host, system_id and password are required for ``smpp``."""

    host: str | None = None
    port: int = Field(2775, ge=1, le=65535, examples=[2775])
    system_id: str | None = None
    password: SecretStr | None = None
    system_type: str = ""
    enquire_link_interval: PositiveDuration = timedelta(seconds=30)
    """How often the worker checks that the bind is alive (the SMPP library itself sends
    enquire_link every 30 s and drops a link that stops answering); a dead link is
    rebound at once, with backoff."""
    reconnect_max: PositiveDuration = timedelta(seconds=60)
    """Longest wait between two bind attempts (the wait doubles from 1 s up to this)."""
    message_id_format: Literal["auto", "same", "receipt_decimal", "receipt_hex"] = "auto"
    """How delivery receipts quote the message id that submit_sm_resp gave: ``same``;
    ``receipt_decimal`` (submit_sm_resp in hex, receipts in decimal); ``receipt_hex`` (the
    reverse); ``auto`` tries the id as given first, then the other base."""
    retry_status: Annotated[int, BeforeValidator(_command_status)] = 0x64
    """The ``deliver_sm_resp`` status for a receipt or caller's text that could not be
    recorded, which must make the SMSC deliver it again: SMPP 3.4's ESME_RX_T_APPN
    (``0x64``) by default; some SMSCs retry only on others, such as ESME_RSYSERR
    (``0x08``) or ESME_RTHROTTLED (``0x58``). Ask the operator which."""


_SENDER_RE = re.compile(r"\+[1-9]\d{6,14}|\d{3,8}")


def _sender_number(value: str) -> str:
    if _SENDER_RE.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not a sender number; write it in E.164 form such as "
            "+13438036032, or a short code such as 123456"
        )
    return value


class SmsSettings(_Section):
    """Outgoing texts."""

    provider: Literal["console", "twilio", "smpp"] = "console"
    sender: str = "+13438036032"
    """The one number texts come from: E.164 (``+13438036032``) or a short code."""
    max_per_second: float = Field(1.0, gt=0, allow_inf_nan=False, examples=[1, 0.5, 30])
    """Never exceeded, across all worker processes together."""
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smpp: SmppSettings = Field(default_factory=SmppSettings)

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if _SENDER_RE.fullmatch(value) is None:
            raise ValueError(
                f"{value!r} is not a sender number; write it in E.164 form such as "
                "+13438036032, or a short code such as 123456"
            )
        return value

    @model_validator(mode="after")
    def _credentials_for_provider(self) -> Self:
        """The chosen provider's credentials must be present (empty counts as missing)."""
        required: dict[str, str | SecretStr | None] = {}
        if self.provider == "twilio":
            required = {
                "twilio.account_sid": self.twilio.account_sid,
                "twilio.auth_token": self.twilio.auth_token,
            }
        elif self.provider == "smpp":
            required = {
                "smpp.host": self.smpp.host,
                "smpp.system_id": self.smpp.system_id,
                "smpp.password": self.smpp.password,
            }
        missing = [key for key, value in required.items() if not value]
        if missing:
            raise _combination_error(f"required when sms.provider is '{self.provider}'", *missing)
        return self


def _drop_disabled_thresholds(value: object) -> object:
    """``off`` removes a priority's threshold (the layers merge, so it cannot be omitted)."""
    if isinstance(value, Mapping):
        return {
            key: entry
            for key, entry in value.items()
            if not (isinstance(entry, str) and entry.strip().lower() == "off")
        }
    return value


class PolicySettings(_Section):
    """Who gets texted, when, and how late a text may still go out."""

    priorities: list[Priority] = Field(default_factory=lambda: [3, 4], examples=[[3, 4]])
    """Agency priorities that may be texted at all; an empty list texts no one."""
    delay_notice_after: Annotated[
        dict[Priority, PositiveDuration], BeforeValidator(_drop_disabled_thresholds)
    ] = Field(
        default_factory=lambda: {3: timedelta(minutes=30), 4: timedelta(minutes=60)},
        examples=[{"3": "30m", "4": "1h"}],
    )
    """No unit dispatched this long after the call → a delay notice. A priority listed in
    ``priorities`` without a threshold simply gets no delay notice; a threshold for a
    priority not in ``priorities`` is harmless and unused. Sources merge entry by entry,
    so setting one priority keeps the others; write ``off`` to remove one."""
    survey_after_clear: Duration = timedelta(minutes=15)
    """Wait after clearance before the survey invitation (``0s`` for no wait)."""
    quiet_hours: Annotated[
        QuietHours | None,
        PlainValidator(_to_quiet_hours),
        PlainSerializer(_quiet_hours_text, return_type=str, when_used="json"),
    ] = QuietHours(time(21, 0), time(8, 0))
    """Written ``HH:MM-HH:MM`` (may wrap midnight) or ``off`` (``None``)."""
    survey_expires: PositiveDuration = timedelta(days=7)
    """Survey link lifetime."""
    max_texts_per_phone_per_day: int = Field(8, ge=1, examples=[8])
    """Safety cap against a misbehaving feed."""
    protect_number_for: Duration = timedelta(days=90)
    """A number on a call about sexual assault, intimate partner violence or abduction,
    or with a risk flag (or held), gets no text about any other call for this long
    (``0s``: only the call itself is protected)."""
    call_types_file: Path | None = None
    """CSV mapping call-type codes to a category and eligibility; ``None`` uses the bundled
    list. A relative path is taken from the working directory."""
    confirmation_expires: PositiveDuration = timedelta(hours=12)
    """A confirmation not sent this long after the call is suppressed as stale."""
    delay_notice_expires: PositiveDuration = timedelta(hours=4)
    """A delay notice not sent this long after it became due is suppressed as stale."""
    survey_invitation_expires: PositiveDuration = timedelta(days=2)
    """A survey invitation not sent this long after clearance is suppressed as stale."""

    @field_validator("call_types_file")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if not path.is_file():
            raise ValueError(
                f"{str(path)!r} is not an existing file; give the path of a call-types CSV, "
                "or leave the setting out to use the bundled list"
            )
        return path.resolve()

    @property
    def call_types_path(self) -> Path:
        """The call-types CSV to load: the configured file or the bundled one."""
        return self.call_types_file or _BUNDLED_CALL_TYPES


class InboundSettings(_Section):
    """Texts that callers send to our number."""

    danger_terms: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, examples=[["help me", "knife", "au secours"]]
    )
    """Words and phrases that flag a caller's text for a person to read (matched as whole
    words, ignoring case and accents; a trailing ``*`` matches any ending). ``None`` uses
    the bundled English and French list (``data/danger-terms.txt``)."""


class PrivacySettings(_Section):
    """Personal data lifetimes."""

    phone_retention: Duration = timedelta(days=2)
    """How long after a call's last text its phone number is purged (``0s``: right away)."""


class WorkerSettings(_Section):
    """The dispatcher and timers (``callerconnect worker``)."""

    lease: PositiveDuration = timedelta(seconds=60)
    """A claimed outbox row is retried by another worker after this long without progress."""
    poll_interval: PositiveDuration = timedelta(seconds=1)
    batch_size: int = Field(20, ge=1, examples=[20])
    max_attempts: int = Field(8, ge=1, examples=[8])
    retry_base: PositiveDuration = timedelta(seconds=2)
    """First retry delay (within ±25% jitter); it triples per attempt up to ``retry_max``
    (domain/retry.py). Short, so a provider's passing errors cost a text seconds."""
    retry_max: PositiveDuration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _retry_bounds(self) -> Self:
        if self.retry_max < self.retry_base:
            raise _combination_error(
                f"must be at least worker.retry_base ({format_duration(self.retry_base)})",
                "retry_max",
            )
        return self


class DashboardSettings(_Section):
    """The internal dashboard: its sessions and the policy choices each service makes."""

    session_idle: PositiveDuration = timedelta(minutes=30)
    """A dashboard session ends after this long without a request."""
    session_max: PositiveDuration = timedelta(hours=12)
    """A dashboard session ends this long after the login, however busy."""
    unit_breakdown: bool = False
    """Show figures per responding unit (off by default: a policy choice, since a unit's
    scores can point at named officers)."""


class ServeSettings(_Section):
    """The web process (``callerconnect serve``): how long a connection may hold the
    server without a request, and how many it keeps (web/server.py)."""

    header_timeout: PositiveDuration = timedelta(seconds=10)
    """A request's headers must be complete this long after its first byte."""
    keep_alive_timeout: PositiveDuration = timedelta(seconds=5)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(1000, ge=1, examples=[1000])
    """Open connections kept at most (lowered to what the open-file limit allows)."""


class OpenDataSettings(_Section):
    """Open data: the public, aggregated, de-identified survey results (contract section 10)."""

    min_responses: int = Field(11, ge=2, examples=[11])
    """A mean or share standing on fewer answers than this is published as ``x``."""
    schedule: Literal["off", "monthly"] = "off"
    """``monthly``: a worker publishes each month once it is over (exactly once)."""
    license_url: HttpBaseUrl = "https://open.canada.ca/en/open-government-licence-canada"
    """The open licence the agency publishes under."""
    license_title: str = Field("Open Government Licence - Canada", min_length=1)
    contact_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """Where the public writes about the data (in the catalogs' contact point)."""
    districts_geojson: Path | None = None
    """District boundaries (GeoJSON, a ``district`` property on each feature): when set,
    the publication includes the latest month's figures by district as GeoJSON."""

    @field_validator("districts_geojson")
    @classmethod
    def _geojson_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no file at {str(value)!r}")
        return value


class NatsSettings(_Section):
    """The CAD feed over NATS JetStream (``callerconnect consume``, contract section 12)."""

    url: str = Field("nats://127.0.0.1:4222", min_length=1, examples=["nats://127.0.0.1:4222"])
    """The NATS server (``--nats`` overrides it)."""
    stream: str = Field("CAD", pattern=r"^[A-Za-z0-9_-]+$", examples=["CAD"])
    """The JetStream stream, created if missing over ``<subject_prefix>.>``."""
    durable: str = Field("callerconnect", pattern=r"^[A-Za-z0-9_-]+$", examples=["callerconnect"])
    """The durable pull consumer every ``consume`` process shares."""
    subject_prefix: str = Field("cad", pattern=r"^[A-Za-z0-9_-]+$", examples=["cad"])
    """First token of the subjects: ``<prefix>.<agency_id>.events`` and ``.eido``."""
    ack_wait: PositiveDuration = timedelta(seconds=30)
    """A message not acknowledged this long after delivery (its consumer died) is
    delivered again, to any consumer."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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


class AgencySmsSettings(_Section):
    """An agency's own number and provider credentials (the provider kind,
    ``sms.provider``, and the rate limit are the deployment's)."""

    sender: Annotated[str, AfterValidator(_sender_number)] = "+13438036032"
    """The agency's number: its texts come from it, and a text to it is its caller's."""
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smpp: SmppSettings = Field(default_factory=SmppSettings)


class AgencyIntakeSettings(_Section):
    """The CAD intake keys of one agency: an event posted with one belongs to it."""

    api_keys: list[StrongSecret] = Field(default_factory=list, examples=[["<key-1>"]])


class AgencySettings(_Section):
    """One ``[agencies.<id>]`` table (contract section 11). A key left out is the default
    agency's (the top-level one), except the intake keys, which are never shared."""

    agency_name: LocalizedName = Field(default_factory=LocalizedName)
    timezone: Annotated[str, AfterValidator(_known_timezone)] = "America/Toronto"
    non_emergency_number: str = Field("613-236-1222", min_length=1, examples=["613-236-1222"])
    sms: AgencySmsSettings = Field(default_factory=AgencySmsSettings)
    intake: AgencyIntakeSettings = Field(default_factory=AgencyIntakeSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_INHERITED_SMS_KEYS = ("sender", "twilio", "smpp")


def _as_data(value: object) -> object:
    """A section as plain data: ``Settings(sms=SmsSettings(...))`` passes models."""
    return value.model_dump() if isinstance(value, BaseModel) else value


def _inherited_agency_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """What an agency table starts from: the default agency's agency-level keys."""
    inherited: dict[str, Any] = {}
    for key in ("agency_name", "timezone", "non_emergency_number", "policy"):
        if key in data:
            inherited[key] = _as_data(data[key])
    sms = _as_data(data.get("sms", {}))
    if isinstance(sms, Mapping):
        inherited["sms"] = {k: _as_data(v) for k, v in sms.items() if k in _INHERITED_SMS_KEYS}
    return inherited


class Settings(BaseSettings):
    """Everything an operator can configure, validated and immutable.

    Build it with :func:`load_settings`; constructing ``Settings(...)`` directly validates
    the given values over the defaults and reads neither the environment nor a file.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        use_attribute_docstrings=True,
    )

    database_url: Annotated[str, _SENSITIVE] = "sqlite:///callerconnect.db"
    """SQLAlchemy URL; ``postgresql+psycopg://...`` in production. Masked in repr."""
    secret_key: StrongSecret | None = None
    """Encrypts phone numbers at rest and signs cookies; see :meth:`require_secret_key`."""
    old_secret_keys: list[StrongSecret] = Field(default_factory=list, examples=[["<previous-key>"]])
    """Previous secret keys, still accepted for reading while data is re-encrypted."""
    public_base_url: HttpBaseUrl = "http://127.0.0.1:8000"
    """Base of survey links and public pages (no trailing slash once loaded)."""
    timezone: str = "America/Toronto"
    """IANA time zone for quiet hours and reports; see :attr:`tz`."""
    agency_id: str = "default"
    """Identifier stored on every call, for deployments serving several agencies."""
    agency_name: LocalizedName = Field(default_factory=LocalizedName)
    non_emergency_number: str = Field("613-236-1222", min_length=1, examples=["613-236-1222"])
    """Quoted in the reply to HELP/AIDE/INFO."""
    log_level: str = "INFO"
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    opendata: OpenDataSettings = Field(default_factory=OpenDataSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    agencies: dict[AgencyId, AgencySettings] = Field(default_factory=dict)
    """``[agencies.<id>]`` tables (contract section 11): more agencies beside the default
    one; each key left out is the default agency's (intake keys excepted)."""

    @model_validator(mode="before")
    @classmethod
    def _agencies_inherit(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("agencies"), Mapping):
            return data
        inherited = _inherited_agency_data(data)
        agencies = {
            agency_id: _merge(inherited, table) if isinstance(table, Mapping) else table
            for agency_id, table in data["agencies"].items()
        }
        return {**data, "agencies": agencies}

    @model_validator(mode="after")
    def _agencies_apart(self) -> Self:
        """Each agency's id, sender and intake keys are its own: an event or a caller's
        text that two agencies could claim must stop start-up, not pick one."""
        if self.agency_id in self.agencies:
            raise _combination_error(
                f"{self.agency_id!r} is already the default agency (agency_id)",
                f"agencies.{self.agency_id}",
            )
        senders: dict[str, str] = {self.sms.sender: "sms.sender"}
        keys: dict[str, str] = {
            k.get_secret_value(): "intake.api_keys" for k in self.intake.api_keys
        }
        for agency_id, agency in self.agencies.items():
            where = f"agencies.{agency_id}.sms.sender"
            if agency.sms.sender in senders:
                raise _combination_error(
                    f"{senders[agency.sms.sender]} and {where} are the same number: a "
                    "caller's text to it could not be told apart; give each agency its own",
                    where,
                    senders[agency.sms.sender],
                )
            senders[agency.sms.sender] = where
            where = f"agencies.{agency_id}.intake.api_keys"
            for key in agency.intake.api_keys:
                secret = key.get_secret_value()
                if keys.get(secret, where) != where:
                    raise _combination_error(
                        f"the same intake key is in {keys[secret]} and {where}; an intake "
                        "key belongs to exactly one agency",
                        where,
                        keys[secret],
                    )
                keys[secret] = where
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the constructor's arguments: load_settings reads the file and the
        # environment itself so it can merge them and name the source of a bad value.
        return (init_settings,)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
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

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as America/Toronto"
            ) from None
        return value

    @field_validator("agency_id")
    @classmethod
    def _check_agency_id(cls, value: str) -> str:
        if _AGENCY_ID_RE.fullmatch(value) is None:
            raise ValueError(
                f"{value!r} is not an agency id; use lower-case letters, digits, - and _ "
                "(up to 63), such as ottawa-police"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(_LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        """A text whose lease runs out while its request is still in flight is claimed and
        sent again by another worker: the lease must outlast the provider's timeout."""
        timeout = self.sms.twilio.timeout
        if self.sms.provider == "twilio" and self.worker.lease <= timeout:
            raise _combination_error(
                f"must be longer than sms.twilio.timeout ({format_duration(timeout)}), or a "
                "text still being sent when its lease ends is sent again by another worker",
                "worker.lease",
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone (validated at load, so this cannot fail)."""
        return ZoneInfo(self.timezone)

    @property
    def agency_ids(self) -> list[str]:
        """Every configured agency, the default one first."""
        return [self.agency_id, *self.agencies]

    def for_agency(self, agency_id: str | None) -> Settings:
        """These settings as agency ``agency_id`` sees them: its agency-level keys at the
        top, where single-agency code reads them (its id, names, time zone, policy,
        number). ``None`` is the default agency. Raises ConfigError naming the
        configured agencies for an id that is not one of them."""
        if agency_id is None or agency_id == self.agency_id:
            return self
        agency = self.agencies.get(agency_id)
        if agency is None:
            raise ConfigError(
                "agencies",
                f"unknown agency {agency_id!r}; the configured agencies are: "
                + ", ".join(self.agency_ids),
            )
        sms = self.sms.model_copy(
            update={
                "sender": agency.sms.sender,
                "twilio": agency.sms.twilio,
                "smpp": agency.sms.smpp,
            }
        )
        return self.model_copy(
            update={
                "agency_id": agency_id,
                "agency_name": agency.agency_name,
                "timezone": agency.timezone,
                "non_emergency_number": agency.non_emergency_number,
                "policy": agency.policy,
                "sms": sms,
                "intake": self.intake.model_copy(update={"api_keys": agency.intake.api_keys}),
            }
        )

    def require_secret_key(self) -> SecretStr:
        """The secret key, for the commands that cannot run without it (serve, worker)."""
        if self.secret_key is None:
            raise ConfigError(
                "secret_key",
                _describe(
                    "secret_key",
                    "not set; it encrypts phone numbers at rest and signs cookies, so "
                    f"serve/worker refuse to start without it; {_GENERATE_HINT}",
                ),
            )
        return self.secret_key

    def require_intake_keys(self) -> tuple[SecretStr, ...]:
        """The CAD intake keys of every agency, for ``serve`` (which refuses to accept
        unauthenticated events); an agency without a key of its own simply gets no events."""
        keys = [
            *self.intake.api_keys,
            *(k for a in self.agencies.values() for k in a.intake.api_keys),
        ]
        if not keys:
            raise ConfigError(
                "intake.api_keys",
                _describe(
                    "intake.api_keys",
                    "no CAD intake key is set, so serve refuses to start; set a JSON list such "
                    f'as ["<key>"] (or api_keys = ["<key>"] under [intake]); {_GENERATE_HINT}',
                ),
            )
        return tuple(keys)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The database URL is a plain str (SQLAlchemy takes it as such) but may hold a
        # password: mask it wherever the settings are printed.
        for name, value in super().__repr_args__():
            if name == "database_url":
                value = make_url(value).render_as_string(hide_password=True)
            yield name, value


# --- loading ----------------------------------------------------------------------------


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file and the environment over the defaults, validate, and return.

    ``config_path`` must exist when given; without it ``./callerconnect.toml`` is read if
    present. ``environ`` defaults to ``os.environ`` (tests pass their own mapping).
    Raises :class:`ConfigError` for any problem, never a pydantic error.
    """
    return load_settings_with_sources(config_path, environ)[0]


@dataclass(frozen=True, slots=True)
class SettingsSources:
    """What each source said, so ``config check`` can tell where a value came from."""

    file: Path | None
    file_data: Mapping[str, Any]
    env_data: Mapping[str, Any]


def load_settings_with_sources(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Settings, SettingsSources]:
    """:func:`load_settings`, with the values each source gave."""
    path = _config_file(config_path)
    file_data = _read_toml(path) if path is not None else {}
    environ = os.environ if environ is None else environ
    _refuse_unknown_keys(file_data, path, environ)
    env_data = _read_environment(environ)
    data = _merge(_merge(_mapping_defaults(Settings), file_data), env_data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        # ``from None``: the operator needs the translated message, not pydantic's internals.
        raise _translate(error, path, file_data, env_data) from None
    return settings, SettingsSources(path, file_data, env_data)


def _refuse_unknown_keys(
    file_data: Mapping[str, Any], path: Path | None, environ: Mapping[str, str]
) -> None:
    unknown = unknown_keys(Settings, file_data, str(path), environ)
    if not unknown:
        return
    lines = [problem.message() for problem in unknown]
    message = lines[0] if len(lines) == 1 else "\n".join(["unknown settings:", *lines])
    raise ConfigError(unknown[0].key, message, keys=tuple(p.key for p in unknown))


def _config_file(config_path: str | Path | None) -> Path | None:
    if config_path is None:
        return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(None, f"config file {str(path)!r} does not exist or is not a file")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = TomlConfigSettingsSource(Settings, toml_file=path)()
    except OSError as error:
        raise ConfigError(
            None, f"cannot read config file {str(path)!r}: {error.strerror}"
        ) from None
    except ValueError as error:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
        raise ConfigError(None, f"config file {str(path)!r} is not valid TOML: {error}") from None
    return _nest_flat_keys(data, path)


def _nest_flat_keys(table: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Accept the contract's flat spelling in the file too (``sms__provider = "twilio"``),
    beside ordinary tables (``[sms]`` ``provider = "twilio"``). A key set both ways is an
    error rather than a silent winner."""
    nested: dict[str, Any] = {}
    for parts, value in _leaves(table):
        target = nested
        for depth, part in enumerate(parts[:-1], start=1):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                _set_twice(parts[:depth], path)
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(target.get(leaf), dict):
            continue  # an empty table where the other spelling already put keys
        if leaf in target:
            _set_twice(parts, path)
        target[leaf] = value
    return nested


def _leaves(
    table: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every non-table value (and every empty table) with its key path, ``__`` split."""
    for key, value in table.items():
        parts = (*prefix, *key.split(ENV_NESTED_DELIMITER))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, parts)
        else:
            yield parts, value


def _set_twice(parts: tuple[str, ...], path: Path) -> None:
    key = ".".join(parts)
    raise ConfigError(key, _describe(key, "set twice in the file", str(path)))


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping, not ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars during the base constructor
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return _MappingEnvSource(environ)()
    except SettingsError as error:
        # pydantic-settings names only the top-level field; find the variable at fault.
        for name, value in environ.items():
            if not name.upper().startswith(ENV_PREFIX):
                continue
            try:
                _MappingEnvSource({name: value})()
            except SettingsError as single:
                key = name[len(ENV_PREFIX) :].lower().replace(ENV_NESTED_DELIMITER, ".")
                raise ConfigError(
                    key,
                    _describe(
                        key,
                        f"not valid JSON ({single.__cause__}); lists and tables in environment "
                        'variables are JSON, such as ["k1", "k2"] or {"3": "30m"}',
                        "the environment",
                    ),
                ) from None
        # Only variables together fail (not expected): still a ConfigError, not a traceback.
        raise ConfigError(
            None, f"the CALLERCONNECT_* environment variables are unusable: {error}"
        ) from None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds, directly or as ``Model | None``."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _mapping_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of every mapping-valued field, in the form the sources use.

    Seeding the merge with them is what makes a source that sets one entry (priority 3's
    threshold) add to the defaults instead of replacing the whole mapping.
    """
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        submodel = _submodel(annotation)
        if submodel is not None and get_origin(annotation) is not dict:
            if nested := _mapping_defaults(submodel):
                defaults[name] = nested
        elif annotation is not None and get_origin(annotation) is dict:
            default = field.get_default(call_default_factory=True)
            defaults[name] = TypeAdapter(annotation).dump_python(default, mode="json")
    return defaults


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursing into tables so siblings survive."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def _has(data: Mapping[str, Any], names: list[str]) -> bool:
    for name in names:
        if not isinstance(data, Mapping) or name not in data:
            return False
        data = data[name]
    return True


def _locate(names: list[str]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Walk ``names`` from :class:`Settings`: the model in which the last reachable name was
    looked up, and the deepest field on the path (the mapping field for a mapping entry)."""
    model: type[BaseModel] | None = Settings
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    entry = False  # the next name is a mapping's entry (an agency's id)
    for name in names:
        if entry:
            entry = False
            continue
        if model is None:
            break
        parent = model
        if name not in model.model_fields:
            break
        field = model.model_fields[name]
        model = _submodel(field.annotation)
        entry = model is not None and get_origin(field.annotation) is dict
    return parent, field


def _may_echo(value: object, field: FieldInfo | None) -> bool:
    """Whether an invalid input can be quoted back: a scalar of a known, non-secret field.

    Whole tables are never quoted (they may hold a secret), nor values of unknown keys (a
    misspelt ``auth_tokn`` is still a token).
    """
    return (
        isinstance(value, str | int | float)
        and field is not None
        and _SENSITIVE not in field.metadata
        and not _mentions_secret(field.annotation)
        and _submodel(field.annotation) is None
    )


def _mentions_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_mentions_secret(arg) for arg in get_args(annotation))


def _problem_lines(
    error: ErrorDetails,
    file: Path | None,
    file_data: Mapping[str, Any],
    env_data: Mapping[str, Any],
) -> Iterator[tuple[str, str]]:
    """(key, message line) pairs for one pydantic error."""
    names: list[str] = []
    item: int | None = None
    for part in error["loc"]:
        if isinstance(part, int):  # a list index: report the list, say which item
            item = part
            break
        if part != "[key]":  # a bad mapping key is reported at its entry
            names.append(part)
    ctx = error.get("ctx", {})

    if error["type"] == "settings_combination":
        for subkey in ctx["subkeys"]:
            key = ".".join([*names, subkey])
            yield key, _describe(key, error["msg"])
        return

    key = ".".join(names)
    if _has(env_data, names):
        origin: str | None = "the environment"
    elif _has(file_data, names):
        origin = str(file)
    else:
        origin = None
    model, field = _locate(names)

    if error["type"] == "extra_forbidden":
        known = sorted(model.model_fields) if model is not None else []
        text = "unknown setting"
        if close := difflib.get_close_matches(names[-1], known, n=1):
            text += f"; did you mean {'.'.join([*names[:-1], close[0]])}?"
        if known:
            text += f" (known here: {', '.join(known)})"
    elif error["type"] == "value_error":
        # Our own validators: their message already says what a good value looks like.
        text = str(ctx["error"])
    else:
        text = error["msg"]
        value = error["input"]
        if _may_echo(value, field):
            text += f" (got {value!r})"
        if field is not None and field.examples:
            example = field.examples[0]
            shown = example if isinstance(example, str) else json.dumps(example)
            text += f"; for example {shown}"
    if item is not None:
        text = f"list item {item + 1}: {text}"
    yield key, _describe(key, text, origin)


def _translate(
    error: ValidationError,
    file: Path | None,
    file_data: Mapping[str, Any],
    env_data: Mapping[str, Any],
) -> ConfigError:
    problems = [
        problem
        for detail in error.errors(include_url=False)
        for problem in _problem_lines(detail, file, file_data, env_data)
    ]
    keys = tuple(key for key, _ in problems)
    if len(problems) == 1:
        message = problems[0][1]
    else:
        message = f"{len(problems)} settings are invalid:\n" + "\n".join(
            f"  {line}" for _, line in problems
        )
    return ConfigError(keys[0], message, keys=keys)
