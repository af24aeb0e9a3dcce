"""``callerconnect config check``: the effective settings, where each came from, and the
choices that are legal but almost surely wrong.

Every value is shown with its source (``default``, the file, ``environment``) so that an
operator can see at once that a variable they thought they set did not arrive. Secrets
are masked; the database URL is shown without its password.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callerconnect.config import (
    Settings,
    SettingsSources,
)
from callerconnect.entrypoints.errors import safe_database_url

#: Shorter secrets than this are refused outright below 16 characters (config/values.py); between
#: the two they are legal but weaker than the 32 random bytes the docs recommend.
RECOMMENDED_SECRET_LENGTH = 32


def _short_secrets(settings: Settings) -> list[str]:
    """The keys holding a secret shorter than recommended (never the values)."""
    short = []
    if (
        settings.secret_key
        and len(settings.secret_key.get_secret_value()) < RECOMMENDED_SECRET_LENGTH
    ):
        short.append("secret_key")
    if any(len(k.get_secret_value()) < RECOMMENDED_SECRET_LENGTH for k in settings.intake.api_keys):
        short.append("intake.api_keys")
    return short


MASK = "********"
_SECRET_WORDS = ("password", "token", "secret", "api_keys", "key")


@dataclass(frozen=True, slots=True)
class EffectiveValue:
    key: str
    shown: str
    origin: str


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "error" or "warning"
    key: str
    message: str


def _leaves(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            yield from _leaves(inner, (*prefix, str(key)))
    else:
        yield prefix, value


def _has(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    current: Any = data
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _origin(path: tuple[str, ...], sources: SettingsSources) -> str:
    # A whole table given as one value (JSON in a variable) counts for its keys too.
    for depth in range(len(path), 0, -1):
        if _has(sources.env_data, path[:depth]):
            return "environment"
    for depth in range(len(path), 0, -1):
        if _has(sources.file_data, path[:depth]):
            return f"file {sources.file}"
    return "default"


def _is_secret(path: tuple[str, ...]) -> bool:
    return any(word in part for part in path for word in _SECRET_WORDS) and path != ("agency_id",)


def effective_values(settings: Settings, sources: SettingsSources) -> list[EffectiveValue]:
    dumped = settings.model_dump(mode="json")
    values = []
    for path, value in _leaves(dumped):
        key = ".".join(path)
        if key == "database_url":
            shown = safe_database_url(settings.database_url)
        elif value is None or value == []:
            shown = "(not set)" if value is None else "[]"
        elif _is_secret(path) or (isinstance(value, str) and value == "**********"):
            shown = MASK if not isinstance(value, list) else f"[{len(value)} × {MASK}]"
        else:
            shown = str(value)
        values.append(EffectiveValue(key, shown, _origin(path, sources)))
    return values


def findings(settings: Settings, *, workers: int = 1) -> list[Finding]:
    """Errors that stop ``serve``/``worker``, and warnings about likely mistakes."""
    found: list[Finding] = []
    default_base = Settings.model_fields["public_base_url"].default
    if settings.secret_key is None:
        found.append(
            Finding("error", "secret_key", "not set: serve and worker refuse to start without it")
        )
    if not settings.intake.api_keys:
        found.append(
            Finding("warning", "intake.api_keys", "no CAD intake key: serve refuses to start")
        )
    if settings.sms.provider == "twilio" and settings.public_base_url == default_base:
        found.append(
            Finding(
                "warning",
                "public_base_url",
                f"still the default {default_base} while sms.provider is twilio: every survey "
                "link and status callback would point at this machine's loopback address",
            )
        )
    elif settings.sms.provider != "console" and settings.public_base_url.startswith("http://"):
        found.append(
            Finding(
                "warning",
                "public_base_url",
                "not https: survey links would be sent over plain HTTP",
            )
        )
    if settings.database_url.startswith("sqlite") and (
        workers > 1 or settings.sms.provider != "console"
    ):
        found.append(
            Finding(
                "warning",
                "database_url",
                "SQLite lets one process write at a time: fine for a trial, but several "
                "workers (or serve and a worker under load) wait on each other; use "
                "PostgreSQL in production",
            )
        )
    for key in _short_secrets(settings):
        found.append(
            Finding(
                "warning",
                key,
                f"shorter than {RECOMMENDED_SECRET_LENGTH} characters, easy to guess; use "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            )
        )
    if settings.policy.quiet_hours is None:
        found.append(
            Finding(
                "warning",
                "policy.quiet_hours",
                "off: delay notices and survey invitations may be sent in the middle of the night",
            )
        )
    return found
