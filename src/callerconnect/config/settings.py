"""The settings model: everything an operator can configure, validated and immutable.

:class:`Settings` holds the tables of ``sections.py``, the default agency's keys at the
top level and the other agencies' ``[agencies.<id>]`` tables (``agencies.py``), and
checks what spans tables: one agency's number or intake key is never another's, and a
text's lease outlasts a send. Reading the file and the environment is ``loading.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url

from callerconnect.config.agencies import AgencySettings, inherited_agency_data
from callerconnect.config.errors import ConfigError, describe
from callerconnect.config.keys import ENV_NESTED_DELIMITER, ENV_PREFIX
from callerconnect.config.sections import (
    DashboardSettings,
    InboundSettings,
    IntakeSettings,
    LocalizedName,
    NatsSettings,
    OpenDataSettings,
    PolicySettings,
    PrivacySettings,
    ServeSettings,
    SmsSettings,
    WorkerSettings,
    combination_error,
)
from callerconnect.config.values import (
    GENERATE_HINT,
    AgencyId,
    DatabaseUrl,
    HttpBaseUrl,
    LogLevel,
    StrongSecret,
    TimeZoneName,
    format_duration,
)


def merge_tables(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursing into tables so siblings survive."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_tables(current, value)
        else:
            merged[key] = value
    return merged


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

    database_url: DatabaseUrl = "sqlite:///callerconnect.db"
    """SQLAlchemy URL; ``postgresql+psycopg://...`` in production. Masked in repr."""
    secret_key: StrongSecret | None = None
    """Encrypts phone numbers at rest and signs cookies; see :meth:`require_secret_key`."""
    old_secret_keys: list[StrongSecret] = Field(default_factory=list, examples=[["<previous-key>"]])
    """Previous secret keys, still accepted for reading while data is re-encrypted."""
    public_base_url: HttpBaseUrl = "http://127.0.0.1:8000"
    """Base of survey links and public pages (no trailing slash once loaded)."""
    timezone: TimeZoneName = "America/Toronto"
    """IANA time zone for quiet hours and reports; see :attr:`tz`."""
    agency_id: AgencyId = "default"
    """Identifier stored on every call, for deployments serving several agencies."""
    agency_name: LocalizedName = Field(default_factory=LocalizedName)
    non_emergency_number: str = Field("613-236-1222", min_length=1, examples=["613-236-1222"])
    """Quoted in the reply to HELP/AIDE/INFO."""
    log_level: LogLevel = "INFO"
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
        inherited = inherited_agency_data(data)
        agencies = {
            agency_id: merge_tables(inherited, table) if isinstance(table, Mapping) else table
            for agency_id, table in data["agencies"].items()
        }
        return {**data, "agencies": agencies}

    @model_validator(mode="after")
    def _agencies_apart(self) -> Self:
        """Each agency's id, sender and intake keys are its own: an event or a caller's
        text that two agencies could claim must stop start-up, not pick one."""
        if self.agency_id in self.agencies:
            raise combination_error(
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
                raise combination_error(
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
                    raise combination_error(
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

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        """A text whose lease runs out while its request is still in flight is claimed and
        sent again by another worker: the lease must outlast the provider's timeout."""
        timeout = self.sms.twilio.timeout
        if self.sms.provider == "twilio" and self.worker.lease <= timeout:
            raise combination_error(
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
                describe(
                    "secret_key",
                    "not set; it encrypts phone numbers at rest and signs cookies, so "
                    f"serve/worker refuse to start without it; {GENERATE_HINT}",
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
                describe(
                    "intake.api_keys",
                    "no CAD intake key is set, so serve refuses to start; set a JSON list such "
                    f'as ["<key>"] (or api_keys = ["<key>"] under [intake]); {GENERATE_HINT}',
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
