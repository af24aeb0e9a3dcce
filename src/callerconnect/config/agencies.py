"""The agency-level settings (contract section 11): one ``[agencies.<id>]`` table.

The top-level keys describe the default agency; each table adds an agency and may set
every agency-level key. What a table leaves out is the default agency's
(:func:`inherited_agency_data`), except the intake keys, which are never shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from callerconnect.config.sections import (
    LocalizedName,
    PolicySettings,
    Section,
    SmppSettings,
    TwilioSettings,
)
from callerconnect.config.values import SenderNumber, StrongSecret, TimeZoneName


class AgencySmsSettings(Section):
    """An agency's own number and provider credentials (the provider kind,
    ``sms.provider``, and the rate limit are the deployment's)."""

    sender: SenderNumber = "+13438036032"
    """The agency's number: its texts come from it, and a text to it is its caller's."""
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smpp: SmppSettings = Field(default_factory=SmppSettings)


class AgencyIntakeSettings(Section):
    """The CAD intake keys of one agency: an event posted with one belongs to it."""

    api_keys: list[StrongSecret] = Field(default_factory=list, examples=[["<key-1>"]])


class AgencySettings(Section):
    """One ``[agencies.<id>]`` table (contract section 11). A key left out is the default
    agency's (the top-level one), except the intake keys, which are never shared."""

    agency_name: LocalizedName = Field(default_factory=LocalizedName)
    timezone: TimeZoneName = "America/Toronto"
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


def inherited_agency_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """What an agency table starts from: the default agency's agency-level keys."""
    inherited: dict[str, Any] = {}
    for key in ("agency_name", "timezone", "non_emergency_number", "policy"):
        if key in data:
            inherited[key] = _as_data(data[key])
    sms = _as_data(data.get("sms", {}))
    if isinstance(sms, Mapping):
        inherited["sms"] = {k: _as_data(v) for k, v in sms.items() if k in _INHERITED_SMS_KEYS}
    return inherited
