"""The tables of the settings (``[sms]``, ``[policy]``, ``[worker]`` ...): one model each,
with its keys, defaults and the checks that span several keys of one table.

The top-level model that holds them, and the agencies, are in ``settings.py`` and
``agencies.py``; how each value is written is in ``values.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from callerconnect.config.values import (
    QUIET_HOURS_DEFAULT,
    Duration,
    HttpBaseUrl,
    PositiveDuration,
    Priority,
    QuietHoursSetting,
    SenderNumber,
    SmppCommandStatus,
    StrongSecret,
    format_duration,
)
from callerconnect.domain.case_numbers import (
    DEFAULT_CASE_NUMBER_PATTERN,
    compile_case_number_pattern,
)

BUNDLED_CALL_TYPES = Path(__file__).parent.parent / "data" / "call-types.csv"
"""The call-type table used when ``policy.call_types_file`` is not set."""


class Section(BaseModel):
    """Base of every settings table: immutable, an unknown key is an error, and surrounding
    blanks are dropped from strings (a pasted credential often carries some)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )


def combination_error(message: str, *subkeys: str) -> PydanticCustomError:
    """An error about keys *inside* the model being validated.

    A model-level validator can only report at the model's own location; ``subkeys``
    carries the exact keys so the ConfigError can name them (``sms.twilio.account_sid``).
    """
    return PydanticCustomError("settings_combination", message, {"subkeys": subkeys})


class LocalizedName(Section):
    """A name in both official languages, as the texts quote it."""

    en: str = Field("Ottawa Police", min_length=1)
    fr: str = Field("Police d'Ottawa", min_length=1)


def _at_most_a_minute(value: timedelta) -> timedelta:
    if value > timedelta(minutes=1):
        raise ValueError("must be at most 1m: a CAD clock that drifts further must be fixed")
    return value


class IntakeSettings(Section):
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


class TwilioSettings(Section):
    """Twilio REST API credentials; required when ``sms.provider`` is ``twilio``."""

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    api_base: HttpBaseUrl = "https://api.twilio.com"
    """Base URL of the REST API, so a Twilio-compatible gateway can be used."""
    timeout: PositiveDuration = timedelta(seconds=10)


class SmppSettings(Section):
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
    retry_status: SmppCommandStatus = 0x64
    """The ``deliver_sm_resp`` status for a receipt or caller's text that could not be
    recorded, which must make the SMSC deliver it again: SMPP 3.4's ESME_RX_T_APPN
    (``0x64``) by default; some SMSCs retry only on others, such as ESME_RSYSERR
    (``0x08``) or ESME_RTHROTTLED (``0x58``). Ask the operator which."""


class SmsSettings(Section):
    """Outgoing texts."""

    provider: Literal["console", "twilio", "smpp"] = "console"
    sender: SenderNumber = "+13438036032"
    """The one number texts come from: E.164 (``+13438036032``) or a short code."""
    max_per_second: float = Field(1.0, gt=0, allow_inf_nan=False, examples=[1, 0.5, 30])
    """Never exceeded, across all worker processes together."""
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smpp: SmppSettings = Field(default_factory=SmppSettings)

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
            raise combination_error(f"required when sms.provider is '{self.provider}'", *missing)
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


class PolicySettings(Section):
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
    quiet_hours: QuietHoursSetting = QUIET_HOURS_DEFAULT
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
        return self.call_types_file or BUNDLED_CALL_TYPES


class InboundSettings(Section):
    """Texts that callers send to our number."""

    danger_terms: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, examples=[["help me", "knife", "au secours"]]
    )
    """Words and phrases that flag a caller's text for a person to read (matched as whole
    words, ignoring case and accents; a trailing ``*`` matches any ending). ``None`` uses
    the bundled English and French list (``data/danger-terms.txt``)."""


class PrivacySettings(Section):
    """Personal data lifetimes."""

    phone_retention: Duration = timedelta(days=2)
    """How long after a call's last text its phone number is purged (``0s``: right away)."""


class WorkerSettings(Section):
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
            raise combination_error(
                f"must be at least worker.retry_base ({format_duration(self.retry_base)})",
                "retry_max",
            )
        return self


class DashboardSettings(Section):
    """The internal dashboard: its sessions and the policy choices each service makes."""

    session_idle: PositiveDuration = timedelta(minutes=30)
    """A dashboard session ends after this long without a request."""
    session_max: PositiveDuration = timedelta(hours=12)
    """A dashboard session ends this long after the login, however busy."""
    unit_breakdown: bool = False
    """Show figures per responding unit (off by default: a policy choice, since a unit's
    scores can point at named officers)."""


class ServeSettings(Section):
    """The web process (``callerconnect serve``): how long a connection may hold the
    server without a request, and how many it keeps (web/server.py)."""

    header_timeout: PositiveDuration = timedelta(seconds=10)
    """A request's headers must be complete this long after its first byte."""
    keep_alive_timeout: PositiveDuration = timedelta(seconds=5)
    """An idle kept-alive connection is closed after this long."""
    max_connections: int = Field(1000, ge=1, examples=[1000])
    """Open connections kept at most (lowered to what the open-file limit allows)."""


class OpenDataSettings(Section):
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


class NatsSettings(Section):
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
