"""The survey forms' CSRF defence (survey.py's module docstring says how it works), and the
keys it and the per-client limits derive from ``secret_key``."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from enum import Enum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from callerconnect.adapters.crypto import token_hash
from callerconnect.bootstrap import Application

CSRF_FIELD = "csrf_token"
LANDLINE_COOKIE = "cc_feedback_nonce"
CSRF_MAX_AGE = timedelta(hours=24)
NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def survey_keys(application: Application) -> list[bytes]:
    """Keys derive from ``secret_key`` and, so that a form shown before a key rotation
    can still be sent after it, from ``old_secret_keys``: oldest first, newest last (the
    order itsdangerous verifies and signs in). The demo has none configured (it generates
    the encryption key itself), so it gets a random one per process, which is enough for
    a single-process demo: forms signed before a restart are refused, nothing else."""
    configured = application.settings.secret_key
    if configured is None:
        return [secrets.token_bytes(32)]
    old = [k.get_secret_value().encode() for k in application.settings.old_secret_keys]
    return [*reversed(old), configured.get_secret_value().encode()]


class LinkCsrf(Enum):
    """What a survey form's CSRF token says."""

    VALID = "valid"
    EXPIRED = "expired"  # signed by us for this survey, but too long ago: ask again
    INVALID = "invalid"


class SurveyCsrf:
    """Signs and checks the CSRF tokens of both forms."""

    def __init__(self, keys: list[bytes]) -> None:
        csrf_keys = [derive(key, b"callerconnect survey csrf v1") for key in keys]
        self._link = URLSafeTimedSerializer(csrf_keys, salt="survey-link")
        self._landline = URLSafeTimedSerializer(csrf_keys, salt="landline-feedback")

    def link_token(self, token: str) -> str:
        """The form's token for the survey ``token``: it names the survey token's hash."""
        return self._link.dumps(token_hash(token))

    def check_link(self, posted: str, token: str) -> LinkCsrf:
        try:
            signed = self._link.loads(posted, max_age=int(CSRF_MAX_AGE.total_seconds()))
        except SignatureExpired:
            return LinkCsrf.EXPIRED
        except BadSignature:
            return LinkCsrf.INVALID
        return LinkCsrf.VALID if signed == token_hash(token) else LinkCsrf.INVALID

    @staticmethod
    def landline_nonce(cookie: str) -> str:
        """The double-submit nonce: the client's own if it is one of ours, else a new one."""
        return cookie if NONCE.fullmatch(cookie) else secrets.token_urlsafe(24)

    def landline_token(self, nonce: str) -> str:
        return self._landline.dumps(nonce)

    def landline_ok(self, posted: str, cookie_nonce: str) -> bool:
        try:
            signed = self._landline.loads(posted, max_age=int(CSRF_MAX_AGE.total_seconds()))
        except BadSignature:  # SignatureExpired included: nothing to lose but the form
            signed = None
        return (
            bool(cookie_nonce)
            and isinstance(signed, str)
            and hmac.compare_digest(signed, cookie_nonce)
        )
