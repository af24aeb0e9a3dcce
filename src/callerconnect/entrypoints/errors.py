"""Expected failures as one or two lines that name the setting or input to fix.

An unreachable database used to end ``serve`` with a traceback of more than a hundred
lines that never said ``database_url``. :func:`explain` turns the failures an operator
can meet on a first day into a short message and a non-zero exit; the CLI prints the
traceback only with ``--debug``. Nothing here prints a password (URLs are rendered with
the password hidden, and the driver's text is scrubbed of it) or a phone number.
"""

from __future__ import annotations

import errno

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from callerconnect.logs import mask_secrets


def safe_database_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (or the driver alone if unreadable)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unreadable URL>"


def _password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def _scrub(text: str, database_url: str | None) -> str:
    password = _password(database_url)
    if password:
        text = text.replace(str(password), "***")
    return mask_secrets(text)


def _driver_reason(error: DBAPIError) -> str:
    original = error.orig if error.orig is not None else error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def explain(error: BaseException, database_url: str | None = None) -> list[str] | None:
    """The lines to print for an expected failure, or None for an unexpected one."""
    if isinstance(error, DBAPIError):
        where = safe_database_url(database_url) if database_url else "the configured database"
        reason = _scrub(_driver_reason(error), database_url)
        if isinstance(error, OperationalError):
            return [
                f"cannot use the database at {where}: {reason}",
                "check that the server runs and accepts connections, and the setting "
                "database_url (CALLERCONNECT_DATABASE_URL)",
            ]
        return [
            f"the database at {where} refused a request: {reason}",
            "run `callerconnect db upgrade`, and check database_url (CALLERCONNECT_DATABASE_URL)",
        ]
    if _is_alembic_error(error):
        return [
            f"the database schema cannot be brought up to date: {_scrub(str(error), database_url)}",
            "it may have been migrated by a newer callerconnect; run that version, "
            "or check database_url (CALLERCONNECT_DATABASE_URL)",
        ]
    if isinstance(error, OSError) and error.filename is not None:
        reason = error.strerror or type(error).__name__
        return [f"cannot read {error.filename}: {reason}"]
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return [f"{error.strerror}; stop the other process or choose another --port"]
    return None


def _is_alembic_error(error: BaseException) -> bool:
    try:
        from alembic.util.exc import CommandError as AlembicError
    except ImportError:  # pragma: no cover - alembic is a dependency
        return False
    return isinstance(error, AlembicError)
