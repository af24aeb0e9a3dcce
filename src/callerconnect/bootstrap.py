"""The only place that picks real adapters: settings in, a wired application out."""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.sms.base import SmsProvider
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.clock import Clock, SystemClock
from callerconnect.config import ConfigError, Settings
from callerconnect.domain.messages import TextKind
from callerconnect.domain.policy import (
    CallType,
    CallTypeTableError,
    Policy,
    QuietHours,
    parse_call_types,
)
from callerconnect.service.dispatcher import Dispatcher, DispatchOptions
from callerconnect.service.intake import Intake


def load_call_types(path: Path) -> dict[str, CallType]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return parse_call_types(csv.DictReader(handle))
    except (OSError, CallTypeTableError) as error:
        raise ConfigError("policy.call_types_file", f"{path}: {error}") from error


def build_policy(settings: Settings) -> Policy:
    p = settings.policy
    quiet = (
        QuietHours(p.quiet_hours.start, p.quiet_hours.end, settings.tz)
        if p.quiet_hours is not None
        else None
    )
    return Policy(
        priorities=frozenset(p.priorities),
        delay_notice_after=dict(p.delay_notice_after),
        call_types=load_call_types(p.call_types_path),
        survey_after_clear=p.survey_after_clear,
        quiet_hours=quiet,
        survey_expires=p.survey_expires,
        max_texts_per_phone_per_day=p.max_texts_per_phone_per_day,
        expires_after={
            TextKind.CONFIRMATION: p.confirmation_expires,
            TextKind.DELAY_NOTICE: p.delay_notice_expires,
            TextKind.SURVEY_INVITATION: p.survey_invitation_expires,
            TextKind.REPLY: p.confirmation_expires,
        },
    )


def build_provider(settings: Settings, console_out: TextIO | None = None) -> SmsProvider:
    sms = settings.sms
    if sms.provider == "twilio":
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
    if sms.provider == "smpp":
        raise ConfigError(
            "sms.provider",
            "the smpp provider is not available in this version; use console or twilio",
        )
    return ConsoleProvider(console_out)


@dataclass
class Application:
    """Everything a process needs, wired once at start-up."""

    settings: Settings
    db: Database
    vault: Vault
    policy: Policy
    clock: Clock
    provider: SmsProvider
    intake: Intake = field(init=False)
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.intake = Intake(self.db, self.vault, self.policy, self.clock, s.agency_id)
        self.dispatcher = Dispatcher(
            self.db,
            self.vault,
            self.policy,
            self.clock,
            self.provider,
            DispatchOptions(
                agency_name={"en": s.agency_name.en, "fr": s.agency_name.fr},
                public_base_url=s.public_base_url,
                non_emergency_number=s.non_emergency_number,
                survey_expires=s.policy.survey_expires,
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
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()
        self.db.dispose()


def build_application(
    settings: Settings,
    *,
    clock: Clock | None = None,
    provider: SmsProvider | None = None,
    secret_key: str | None = None,
    console_out: TextIO | None = None,
) -> Application:
    """Wire the application. ``secret_key`` overrides the configured one (the demo makes
    one up); otherwise the configured key is required."""
    key = secret_key or settings.require_secret_key().get_secret_value()
    vault = Vault(key, [k.get_secret_value() for k in settings.old_secret_keys])
    return Application(
        settings=settings,
        db=Database.from_url(settings.database_url),
        vault=vault,
        policy=build_policy(settings),
        clock=clock or SystemClock(),
        provider=provider or build_provider(settings, console_out),
    )


def demo_secret() -> str:
    return secrets.token_urlsafe(32)
