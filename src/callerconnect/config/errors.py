"""The one error a configuration problem becomes, and how each problem line is written."""

from __future__ import annotations

from callerconnect.config.keys import env_var


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
        self.env_var = env_var(key) if key is not None else None
        self.keys = keys or ((key,) if key is not None else ())


def describe(key: str, text: str, origin: str | None = None) -> str:
    """One problem line: the key, its environment variable, where the value came from."""
    where = f", value from {origin}" if origin else ""
    return f"{key} (environment variable {env_var(key)}{where}): {text}"
