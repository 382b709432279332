"""API key material: generation, hashing, encryption and constant-time checks."""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

from tidings.errors import Unauthorized
from tidings.kit.crypto import fernet_for, sha256_hex

_PREFIX = {"test": "tdg_test_", "production": "tdg_live_"}


def generate_key(environment: str) -> str:
    return _PREFIX.get(environment, "tdg_") + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    return sha256_hex(key)


def hint(key: str) -> str:
    return "…" + key[-4:]


@dataclass(frozen=True, slots=True)
class KeyCipher:
    """Encrypts keys at rest with the server secret, so an admin can be shown them again."""

    fernet: Fernet

    @classmethod
    def from_secret(cls, secret: bytes) -> KeyCipher:
        """The cipher of every process that shares the server secret."""
        return cls(fernet_for(secret, "tidings api keys"))

    def encrypt(self, key: str) -> bytes:
        return self.fernet.encrypt(key.encode())

    def decrypt(self, ciphertext: bytes) -> str | None:
        try:
            return self.fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            return None

    def matches(self, ciphertext: bytes, presented: str) -> bool:
        stored = self.decrypt(ciphertext)
        if stored is None:
            return False
        return hmac.compare_digest(stored.encode(), presented.encode())


MALFORMED_BASIC_MESSAGE = (
    "The Authorization header is malformed: Basic credentials must be the base64 of "
    "`<key>:` (ASCII). Send `Authorization: Bearer <key>`, or Basic auth with the API key as "
    "the username and an empty password."
)


def key_from_authorization(header: str | None) -> str | None:
    """The key in `Bearer <key>` or `Basic base64(<key>:)`; None when absent or of another
    scheme. Basic credentials that are not base64 of UTF-8 text are a 401, whatever bytes
    they hold."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    scheme = scheme.lower()
    if scheme == "bearer":
        return credentials
    if scheme == "basic":
        try:
            # ValueError: a str with characters outside ASCII (binascii.Error is one too).
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized(MALFORMED_BASIC_MESSAGE, code="invalid_authorization") from exc
        username, _, _password = decoded.partition(":")
        return username or None
    return None
