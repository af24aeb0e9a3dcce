"""Dashboard accounts and their sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, re-hashed on login when the
parameters change). A login answers the same for a wrong password, an unknown address
and a disabled account, and takes about as long: an unknown address is checked against
a dummy hash. Five failures for one address within 15 minutes lock it for 15 minutes,
whether it has an account or not (so the lock tells nothing either).

Sessions are kept on the server: the browser holds a random token, the table only its
SHA-256. A session ends after ``idle`` without a request, ``max_age`` after the login,
at logout, and when the account is disabled or its password changed.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import (
    DashboardSessionRow,
    DashboardUserRow,
    LoginThrottleRow,
)
from callerconnect.clock import Clock
from callerconnect.domain.access import ALL_AGENCIES, Role

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this only stops absurd bodies
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}")
_AGENCY = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class AccountError(ValueError):
    """A request about accounts that cannot be done; ``code`` says which rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: Role
    agency_id: str
    disabled: bool
    created_at: datetime

    @property
    def all_agencies(self) -> bool:
        return self.agency_id == ALL_AGENCIES


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, and the CSRF token its forms carry."""

    account: Account
    csrf_token: str
    language: str | None


class LoginStatus(enum.Enum):
    OK = "ok"
    REFUSED = "refused"  # wrong password, unknown address or disabled account: one answer
    LOCKED = "locked"


@dataclass(frozen=True)
class LoginOutcome:
    status: LoginStatus
    account: Account | None = None
    session_token: str | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    normalized = normalize_email(email)
    if not _EMAIL.fullmatch(normalized):
        raise AccountError("invalid_email", "give an e-mail address such as name@example.org")
    return normalized


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            "weak_password", f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(
            "long_password", f"the password must be at most {MAX_PASSWORD_LENGTH} characters"
        )


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _account(row: DashboardUserRow) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        role=Role(row.role),
        agency_id=row.agency_id,
        disabled=row.disabled_at is not None,
        created_at=row.created_at,
    )


class Accounts:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        default_agency: str,
        idle: timedelta,
        max_age: timedelta,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.default_agency = default_agency
        self.idle = idle
        self.max_age = max_age
        self.hasher = hasher or PasswordHasher()
        # Verified against when the address is unknown, so that answer takes as long.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # --- account management (CLI and admin page) ------------------------------------

    def add(self, email: str, role: str, password: str, agency: str | None = None) -> Account:
        address = check_email(email)
        try:
            parsed_role = Role(role)
        except ValueError:
            raise AccountError(
                "invalid_role", f"role must be one of {', '.join(r.value for r in Role)}"
            ) from None
        agency_id = agency if agency is not None else self.default_agency
        if agency_id == ALL_AGENCIES:
            if parsed_role is not Role.ADMIN:
                raise AccountError(
                    "invalid_agency", "only an admin account can see every agency ('*')"
                )
        elif not _AGENCY.fullmatch(agency_id):
            raise AccountError(
                "invalid_agency",
                "agency must be an agency id (lower-case letters, digits, - and _) or '*'",
            )
        check_password(password)
        hashed = self.hasher.hash(password)
        now = self.clock.now()
        with self.db.transaction() as session:
            if session.scalar(select(DashboardUserRow.id).where(DashboardUserRow.email == address)):
                raise AccountError("exists", f"an account for {address} already exists")
            row = DashboardUserRow(
                email=address,
                role=parsed_role.value,
                agency_id=agency_id,
                password_hash=hashed,
                disabled_at=None,
                created_at=now,
                password_changed_at=now,
            )
            session.add(row)
            session.flush()
            return _account(row)

    def list(self, agencies: frozenset[str] | None = None) -> list[Account]:
        """Every account, or those of ``agencies`` (an admin of one agency sees its own)."""
        with self.db.transaction() as session:
            query = select(DashboardUserRow).order_by(DashboardUserRow.email)
            if agencies is not None:
                query = query.where(DashboardUserRow.agency_id.in_(sorted(agencies)))
            return [_account(row) for row in session.scalars(query)]

    def find(self, email: str) -> Account | None:
        with self.db.transaction() as session:
            row = self._row(session, email)
            return _account(row) if row else None

    def disable(self, email: str) -> Account:
        with self.db.transaction() as session:
            row = self._existing(session, email)
            if row.disabled_at is None:
                row.disabled_at = self.clock.now()
            session.execute(
                delete(DashboardSessionRow).where(DashboardSessionRow.user_id == row.id)
            )
            return _account(row)

    def set_password(self, email: str, password: str) -> Account:
        check_password(password)
        hashed = self.hasher.hash(password)
        with self.db.transaction() as session:
            row = self._existing(session, email)
            row.password_hash = hashed
            row.password_changed_at = self.clock.now()
            # Whoever held the old password is signed out everywhere.
            session.execute(
                delete(DashboardSessionRow).where(DashboardSessionRow.user_id == row.id)
            )
            session.execute(
                delete(LoginThrottleRow).where(LoginThrottleRow.email_hash == _sha256(row.email))
            )
            return _account(row)

    def _row(self, session: Session, email: str) -> DashboardUserRow | None:
        return session.scalar(
            select(DashboardUserRow).where(DashboardUserRow.email == normalize_email(email))
        )

    def _existing(self, session: Session, email: str) -> DashboardUserRow:
        row = self._row(session, email)
        if row is None:
            raise AccountError("unknown", f"no account for {normalize_email(email)}")
        return row

    # --- login -------------------------------------------------------------------------

    def login(self, email: str, password: str, language: str | None = None) -> LoginOutcome:
        address = normalize_email(email)[:254]
        key = _sha256(address)
        now = self.clock.now()
        with self.db.transaction() as session:
            throttle = session.get(LoginThrottleRow, key)
            if throttle and throttle.locked_until and throttle.locked_until > now:
                self._verify(self._dummy_hash, password)  # same work as any other answer
                return LoginOutcome(LoginStatus.LOCKED)
            row = self._row(session, address)
            usable = row is not None and row.disabled_at is None
            stored = row.password_hash if row is not None and usable else self._dummy_hash
            matched = self._verify(stored, password[:MAX_PASSWORD_LENGTH]) and usable
            if not matched or row is None:
                self._count_failure(session, key, throttle, now)
                return LoginOutcome(LoginStatus.REFUSED)
            if throttle is not None:
                session.delete(throttle)
            # Sessions that ran out are otherwise only removed when presented again.
            self._delete_expired(session, now)
            if self.hasher.check_needs_rehash(row.password_hash):
                row.password_hash = self.hasher.hash(password)
            token = secrets.token_urlsafe(32)
            session.add(
                DashboardSessionRow(
                    token_hash=_sha256(token),
                    user_id=row.id,
                    csrf_token=secrets.token_urlsafe(32),
                    language=language,
                    created_at=now,
                    last_seen_at=now,
                )
            )
            return LoginOutcome(LoginStatus.OK, _account(row), token)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _count_failure(
        self, session: Session, key: str, throttle: LoginThrottleRow | None, now: datetime
    ) -> None:
        if throttle is None:
            session.add(LoginThrottleRow(email_hash=key, window_start=now, failures=1))
            return
        if now - throttle.window_start >= FAILURE_WINDOW:
            throttle.window_start = now
            throttle.failures = 0
        throttle.failures += 1
        if throttle.failures >= MAX_FAILURES:
            throttle.locked_until = now + LOCKOUT
            throttle.failures = 0
            throttle.window_start = now

    # --- sessions ------------------------------------------------------------------------

    def session(self, token: str | None) -> SignedIn | None:
        """The live session of ``token`` (its last use moved to now), or ``None``."""
        if not token or len(token) > 128:
            return None
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(DashboardSessionRow, _sha256(token))
            if row is None:
                return None
            if now - row.last_seen_at >= self.idle or now - row.created_at >= self.max_age:
                session.delete(row)
                return None
            user = session.get(DashboardUserRow, row.user_id)
            if user is None or user.disabled_at is not None:
                session.delete(row)
                return None
            row.last_seen_at = now
            return SignedIn(_account(user), row.csrf_token, row.language)

    def remember_language(self, token: str, language: str) -> None:
        with self.db.transaction() as session:
            row = session.get(DashboardSessionRow, _sha256(token))
            if row is not None:
                row.language = language

    def logout(self, token: str | None) -> None:
        if not token:
            return
        with self.db.transaction() as session:
            session.execute(
                delete(DashboardSessionRow).where(DashboardSessionRow.token_hash == _sha256(token))
            )

    def _delete_expired(self, session: Session, now: datetime) -> None:
        session.execute(
            delete(DashboardSessionRow).where(
                (DashboardSessionRow.last_seen_at <= now - self.idle)
                | (DashboardSessionRow.created_at <= now - self.max_age)
            )
        )
