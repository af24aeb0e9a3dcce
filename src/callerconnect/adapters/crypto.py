"""Personal data at rest: phone numbers, raw CAD payloads (which carry phone numbers),
survey comments and callers' texts are encrypted with a key derived from ``secret_key``;
a keyed hash finds a phone (opt-outs, per-phone counts) without decrypting anything.

Keys rotate. The newest key (``secret_key``) encrypts; it and every key in
``old_secret_keys`` decrypt (Fernet's MultiFernet). ``callerconnect keys rotate``
re-encrypts what is stored under the newest key, after which the old keys can go.

The lookup hash must not change when the secret does, or a caller who answered STOP
would be texted again under the new key. So its key (the *lookup key*) is not the
secret: it is a key of its own, kept in the database encrypted like any other value
(``vault_keys``) and re-encrypted, never replaced, by a rotation.
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


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"callerconnect phone v1")))


def first_lookup_key(secret_key: str, old_secret_keys: Sequence[str] = ()) -> bytes:
    """The lookup key a database gets when it first stores one.

    Derived from the oldest configured secret, which is the key databases created before
    lookup keys were stored hashed with: their opt-outs keep matching. A new database
    gets a key derived from its only secret, as strong as the secret itself.
    """
    return _derive([secret_key, *old_secret_keys][-1], b"callerconnect phone hash v1")


class Vault:
    """Encrypts and decrypts stored values and hashes phones for lookups.

    ``lookup_key`` is the database's stored key (see :mod:`callerconnect.service.keys`,
    which opens a vault against a database); without one, the vault uses the key a new
    database would get, which is what pure tests need.
    """

    def __init__(
        self,
        secret_key: str,
        old_secret_keys: Sequence[str] = (),
        *,
        lookup_key: bytes | None = None,
    ) -> None:
        self._secrets = (secret_key, tuple(old_secret_keys))
        self._newest = _fernet(secret_key)
        self._all = MultiFernet([self._newest, *(_fernet(k) for k in old_secret_keys)])
        self._lookup_key = lookup_key or first_lookup_key(secret_key, old_secret_keys)

    def encrypt(self, plaintext: str) -> str:
        return self._newest.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise VaultError("stored value cannot be decrypted with the configured keys") from error

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is encrypted under the newest key (nothing left to rotate)."""
        try:
            self._newest.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """``token``'s plaintext encrypted under the newest key; the plaintext never
        leaves this method."""
        try:
            return self._all.rotate(token.encode()).decode()
        except InvalidToken as error:
            raise VaultError("stored value cannot be decrypted with the configured keys") from error

    def with_lookup_key(self, lookup_key: bytes) -> Vault:
        secret_key, old_secret_keys = self._secrets
        return Vault(secret_key, old_secret_keys, lookup_key=lookup_key)

    def wrap_lookup_key(self, lookup_key: bytes) -> str:
        return self.encrypt(base64.urlsafe_b64encode(lookup_key).decode())

    def unwrap_lookup_key(self, stored: str) -> bytes:
        return base64.urlsafe_b64decode(self.decrypt(stored))

    def phone_hash(self, phone: str) -> str:
        return hmac.new(self._lookup_key, phone.encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """SHA-256 of a survey token: what we store instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()
