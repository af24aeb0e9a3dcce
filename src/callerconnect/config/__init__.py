"""Configuration: one TOML file plus ``CALLERCONNECT_*`` environment variables, read once.

This is the operator-facing surface described in section 3 of the external contracts.
:func:`load_settings` layers three sources, each overriding the one before:

1. the defaults written on the models (the contract's table, plus a few extensions);
2. the TOML file (``--config PATH``, else ``./callerconnect.toml`` when it exists);
3. environment variables: ``CALLERCONNECT_`` + the key path in upper case joined by ``__``
   (``CALLERCONNECT_SMS__PROVIDER=twilio``); a list or a whole table is written as JSON.

Layers are merged key by key, tables *and* mappings alike, so setting
``CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3=45m`` keeps the default threshold of
priority 4. An empty environment variable counts as unset (deployment templates often
export ``VAR=`` for "not configured"). Every key in the file and every ``CALLERCONNECT_*``
variable that names no setting is an error with the closest real name (``keys.py``), so a
typo cannot silently fall back to a default; only the test suite's and benchmarks' own
variables (``keys.RESERVED_ENV_PREFIXES``) share the prefix without being settings.

Every problem becomes a :class:`ConfigError` naming the dotted key, its environment
variable, where the bad value came from and what a good one looks like. Secret values and
the database URL (which may hold a password) are never echoed.

Reading sources is deliberately kept out of :class:`Settings` itself: ``Settings(...)`` is
a plain validating constructor that never looks at the process environment, which keeps
tests and the demo hermetic.

The package, cut along its seams:

- ``values.py``: how each kind of value is written and checked (durations, priorities,
  secrets, quiet hours, URLs, sender numbers, agency ids, time zones);
- ``sections.py``: the tables (``[sms]``, ``[policy]``, ``[worker]`` ...);
- ``agencies.py``: the agency-level model, one ``[agencies.<id>]`` table (contract
  section 11);
- ``settings.py``: :class:`Settings`, the whole;
- ``keys.py``: which names are settings (the unknown-name check) and their variables;
- ``errors.py``: :class:`ConfigError`;
- ``loading.py``: reading the file and the environment, and translating errors.

Everything callers use is importable from ``callerconnect.config`` itself.
"""

from callerconnect.config.agencies import (
    AgencyIntakeSettings,
    AgencySettings,
    AgencySmsSettings,
)
from callerconnect.config.errors import ConfigError
from callerconnect.config.keys import ENV_NESTED_DELIMITER, ENV_PREFIX
from callerconnect.config.loading import (
    DEFAULT_CONFIG_FILE,
    SettingsSources,
    load_settings,
    load_settings_with_sources,
)
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
    SmppSettings,
    SmsSettings,
    TwilioSettings,
    WorkerSettings,
)
from callerconnect.config.settings import Settings
from callerconnect.config.values import (
    MIN_SECRET_LENGTH,
    Duration,
    PositiveDuration,
    format_duration,
    parse_duration,
)
from callerconnect.domain.policy import QuietHours  # what policy.quiet_hours holds

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "MIN_SECRET_LENGTH",
    "AgencyIntakeSettings",
    "AgencySettings",
    "AgencySmsSettings",
    "ConfigError",
    "DashboardSettings",
    "Duration",
    "InboundSettings",
    "IntakeSettings",
    "LocalizedName",
    "NatsSettings",
    "OpenDataSettings",
    "PolicySettings",
    "PositiveDuration",
    "PrivacySettings",
    "QuietHours",
    "ServeSettings",
    "Settings",
    "SettingsSources",
    "SmppSettings",
    "SmsSettings",
    "TwilioSettings",
    "WorkerSettings",
    "format_duration",
    "load_settings",
    "load_settings_with_sources",
    "parse_duration",
]
