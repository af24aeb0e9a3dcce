"""Personal data at rest: phone numbers and raw CAD payloads (which carry phone numbers)
are encrypted with a key derived from ``secret_key``; a keyed hash finds a phone
(opt-outs, per-phone counts) without decrypting anything.

Keys: the newest key encrypts; every key in ``old_secret_keys`` still decrypts
(Fernet's MultiFernet). Re-encrypting stored data under a new key is not built yet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class VaultError(Exception):
    """A stored value could not be decrypted with any configured key."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class Vault:
    def __init__(self, secret_key: str, old_secret_keys: Sequence[str] = ()) -> None:
        keys = [secret_key, *old_secret_keys]
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(k, b"callerconnect phone v1"))) for k in keys]
        )
        # The lookup hash uses the first key ever configured for hashing: rotating the
        # encryption key must not orphan opt-outs. It is derived from the newest key
        # unless an old key exists, in which case the oldest one keeps lookups stable.
        self._hash_key = _derive(keys[-1], b"callerconnect phone hash v1")

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise VaultError("stored value cannot be decrypted with the configured keys") from error

    def phone_hash(self, phone: str) -> str:
        return hmac.new(self._hash_key, phone.encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """SHA-256 of a survey token: what we store instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()
