"""The only place that picks real adapters: settings in, a wired application out."""

from __future__ import annotations

import csv
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.sms.base import InboundSms, PushProvider, SmsProvider, StatusReport
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.clock import Clock, SystemClock
from callerconnect.config import AgencySettings, ConfigError, Settings
from callerconnect.domain.inbound import DangerTerms
from callerconnect.domain.messages import TextKind
from callerconnect.domain.policy import (
    CallType,
    CallTypeTableError,
    Policy,
    parse_call_types,
)
from callerconnect.service.agencies import Agencies, Agency
from callerconnect.service.dispatcher import Dispatcher, DispatchOptions
from callerconnect.service.inbound import InboundHandler, bundled_danger_terms
from callerconnect.service.intake import Intake
from callerconnect.service.keys import UnknownKeyError, open_vault
from callerconnect.service.receipts import Receipts
from callerconnect.service.schema import ensure_schema


def load_call_types(path: Path) -> dict[str, CallType]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return parse_call_types(csv.DictReader(handle))
    except (OSError, CallTypeTableError) as error:
        raise ConfigError("policy.call_types_file", f"{path}: {error}") from error


AgencyConfig = Settings | AgencySettings
"""The agency-level keys: the top-level ones (the default agency) or an agency's table."""


def build_policy(settings: Settings, agency: AgencyConfig | None = None) -> Policy:
    """The policy of ``agency`` (the default agency's when None), in its time zone."""
    config = agency or settings
    p = config.policy
    quiet = p.quiet_hours.in_zone(config.tz) if p.quiet_hours is not None else None
    return Policy(
        priorities=frozenset(p.priorities),
        delay_notice_after=dict(p.delay_notice_after),
        call_types=load_call_types(p.call_types_path),
        survey_after_clear=p.survey_after_clear,
        quiet_hours=quiet,
        survey_expires=p.survey_expires,
        max_texts_per_phone_per_day=p.max_texts_per_phone_per_day,
        protect_number_for=p.protect_number_for,
        case_number_pattern=settings.intake.case_number_pattern,
        expires_after={
            TextKind.CONFIRMATION: p.confirmation_expires,
            TextKind.DELAY_NOTICE: p.delay_notice_expires,
            TextKind.SURVEY_INVITATION: p.survey_invitation_expires,
            TextKind.REPLY: p.confirmation_expires,
        },
    )


def build_provider(
    settings: Settings, console_out: TextIO | None = None, agency: AgencyConfig | None = None
) -> SmsProvider:
    """The provider that sends ``agency``'s texts (the default agency's when None): the
    deployment's kind of provider, with the agency's number and credentials."""
    sms = (agency or settings).sms
    if settings.sms.provider == "twilio":
        from callerconnect.adapters.sms.twilio import TwilioProvider

        assert sms.twilio.account_sid and sms.twilio.auth_token  # checked by config
        return TwilioProvider(
            account_sid=sms.twilio.account_sid,
            auth_token=sms.twilio.auth_token.get_secret_value(),
            sender=sms.sender,
            api_base=sms.twilio.api_base,
            status_callback_url=f"{settings.public_base_url}/webhooks/twilio/status",
            timeout=sms.twilio.timeout.total_seconds(),
        )
    if settings.sms.provider == "smpp":
        from callerconnect.adapters.sms.smpp import SmppProvider

        smpp = sms.smpp
        if not (smpp.host and smpp.system_id and smpp.password):
            key = f"agencies.{agency_id_of(settings, agency)}.sms.smpp"
            raise ConfigError(key, f"{key}: host, system_id and password are required for smpp")
        # Built here in every process, but only ``worker`` starts it (binds): see
        # Dispatcher.run_forever and adapters/sms/smpp.py.
        return SmppProvider(
            smpp.host,
            smpp.port,
            smpp.system_id,
            smpp.password.get_secret_value(),
            sender=sms.sender,
            system_type=smpp.system_type,
            message_id_mode=smpp.message_id_format,
            liveness_interval=smpp.enquire_link_interval.total_seconds(),
            reconnect_max=smpp.reconnect_max.total_seconds(),
            retry_status=smpp.retry_status,
        )
    return ConsoleProvider(console_out)


def agency_id_of(settings: Settings, agency: AgencyConfig | None) -> str:
    if agency is None or agency is settings:
        return settings.agency_id
    return next(i for i, a in settings.agencies.items() if a is agency)


def _agency_configs(settings: Settings) -> list[tuple[str, AgencyConfig]]:
    return [(settings.agency_id, settings), *settings.agencies.items()]


def build_agencies(
    settings: Settings,
    provider: SmsProvider | Mapping[str, SmsProvider] | None = None,
    console_out: TextIO | None = None,
) -> Agencies:
    """Every configured agency, the default one first. ``provider`` replaces the built
    providers (tests and the demo): one for all agencies, or one per agency id."""
    agencies = []
    for agency_id, config in _agency_configs(settings):
        if isinstance(provider, Mapping):
            chosen = provider[agency_id]
        elif provider is not None:
            chosen = provider
        else:
            chosen = build_provider(settings, console_out, config)
        agencies.append(
            Agency(
                id=agency_id,
                name={"en": config.agency_name.en, "fr": config.agency_name.fr},
                tz=config.tz,
                policy=build_policy(settings, config),
                sender=config.sms.sender,
                non_emergency_number=config.non_emergency_number,
                provider=chosen,
                intake_keys=tuple(k.get_secret_value().encode() for k in config.intake.api_keys),
            )
        )
    return Agencies(agencies)


def build_danger_terms(settings: Settings) -> DangerTerms:
    terms = settings.inbound.danger_terms
    if terms is None:
        return bundled_danger_terms()
    try:
        return DangerTerms(terms)
    except ValueError as error:
        raise ConfigError("inbound.danger_terms", f"inbound.danger_terms: {error}") from None


class ProviderSink:
    """Receipts and inbound texts from the provider, whichever way they came, to the
    services that record them (the ``ProviderEvents`` of adapters/sms/base.py)."""

    def __init__(self, receipts: Receipts, inbound: InboundHandler, provider: str) -> None:
        self.receipts = receipts
        self.inbound_handler = inbound
        self.provider = provider

    def status(self, report: StatusReport) -> None:
        self.receipts.apply(report)

    def inbound(self, message: InboundSms) -> None:
        self.inbound_handler.handle(message, self.provider)


def _receipts_for(db: Database, clock: Clock, provider: SmsProvider) -> Receipts:
    return Receipts(
        db,
        clock,
        provider.name,
        id_mode=getattr(provider, "message_id_mode", "same"),
        opt_out_codes=frozenset({"21610"}) if provider.name == "twilio" else frozenset(),
    )


@dataclass
class Application:
    """Everything a process needs, wired once at start-up.

    ``policy`` and ``provider`` are the default agency's; services find each text's,
    event's and reply's own agency in ``agencies``."""

    settings: Settings
    db: Database
    vault: Vault
    agencies: Agencies
    clock: Clock
    intake: Intake = field(init=False)
    intakes: dict[str, Intake] = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    receipts: Receipts = field(init=False)
    inbound: InboundHandler = field(init=False)

    @property
    def policy(self) -> Policy:
        return self.agencies.default.policy

    @property
    def provider(self) -> SmsProvider:
        return self.agencies.default.provider

    def intake_for(self, agency: Agency) -> Intake:
        """The intake that files events under ``agency`` (the one its key belongs to)."""
        return self.intakes[agency.id]

    def __post_init__(self) -> None:
        s = self.settings
        self.intakes = {
            agency.id: Intake(
                self.db,
                self.vault,
                agency.policy,
                self.clock,
                agency.id,
                max_event_bytes=s.intake.max_event_bytes,
                max_clock_skew=s.intake.max_clock_skew,
            )
            for agency in self.agencies
        }
        self.intake = self.intakes[self.agencies.default.id]
        self.receipts = _receipts_for(self.db, self.clock, self.provider)
        self.inbound = InboundHandler(
            self.db,
            self.vault,
            self.clock,
            self.agencies,
            danger_terms=build_danger_terms(s),
        )
        for provider in self.agencies.providers():
            if isinstance(provider, PushProvider):
                receipts = _receipts_for(self.db, self.clock, provider)
                provider.attach(ProviderSink(receipts, self.inbound, provider.name))
        self.dispatcher = Dispatcher(
            self.db,
            self.vault,
            self.clock,
            self.agencies,
            DispatchOptions(
                public_base_url=s.public_base_url,
                max_per_second=s.sms.max_per_second,
                lease=s.worker.lease,
                batch_size=s.worker.batch_size,
                max_attempts=s.worker.max_attempts,
                retry_base=s.worker.retry_base,
                retry_max=s.worker.retry_max,
                phone_retention=s.privacy.phone_retention,
            ),
        )

    def close(self) -> None:
        for provider in self.agencies.providers():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
        self.db.dispose()


def build_application(
    settings: Settings,
    *,
    clock: Clock | None = None,
    provider: SmsProvider | Mapping[str, SmsProvider] | None = None,
    secret_key: str | None = None,
    console_out: TextIO | None = None,
) -> Application:
    """Wire the application, bringing the database to the current schema first (the
    vault reads its lookup key from it). ``secret_key`` overrides the configured one (the
    demo makes one up); otherwise the configured key is required."""
    key = secret_key or settings.require_secret_key().get_secret_value()
    clock = clock or SystemClock()
    db = Database.from_url(settings.database_url)
    try:
        ensure_schema(db)
        vault = open_vault(
            db, key, [k.get_secret_value() for k in settings.old_secret_keys], clock.now()
        )
    except UnknownKeyError as error:
        db.dispose()
        raise ConfigError("old_secret_keys", str(error)) from None
    except BaseException:
        db.dispose()
        raise
    try:
        agencies = build_agencies(settings, provider, console_out)
    except BaseException:
        db.dispose()
        raise
    return Application(settings=settings, db=db, vault=vault, agencies=agencies, clock=clock)


def demo_secret() -> str:
    return secrets.token_urlsafe(32)
