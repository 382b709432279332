"""Secrets at rest: a server secret, Fernet encryption and HMAC keys derived from it, the
signed tokens of public links, and the signature of Standard Webhooks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import orjson
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE_NAME = "secret_key"


def load_or_create_secret(data_dir: Path, configured: str | None) -> bytes:
    """The server secret: `TIDINGS_SECRET_KEY`, else `<data dir>/secret_key` (made on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    # O_EXCL: when two processes start at once, the second one reads the first one's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


def fernet_for(secret: bytes, purpose: str) -> Fernet:
    """A Fernet key derived from the server secret, one per purpose."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret
    )
    return Fernet(base64.urlsafe_b64encode(key))


def derive_key(secret: bytes, purpose: bytes) -> bytes:
    """A 32-byte key derived (HKDF-SHA256) from the server secret, one per purpose: a token
    signed for one purpose never verifies for another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


# Longer tokens are refused before any work is done on them.
MAX_SIGNED_TOKEN_LENGTH = 4096


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def sign_fields(key: bytes, version: str, fields: Sequence[str]) -> str:
    """A URL-safe token `<version>.<payload>.<mac>` carrying `fields`: the payload is the
    base64url JSON array of them, the MAC HMAC-SHA256 over `<version>.<payload>` with `key`
    (from `derive_key`). The version names the key and the format, so that a later version
    can come with a new key while tokens of the old one keep working for as long as it is
    still accepted."""
    signed = f"{version}.{_b64encode(orjson.dumps(list(fields)))}"
    return f"{signed}.{_b64encode(_mac(key, signed))}"


def verify_fields(key: bytes, version: str, token: str, count: int) -> tuple[str, ...] | None:
    """The `count` non-empty fields of a token `sign_fields` made with this key and version,
    or None when it is anything else (changed, cut short, another version or key).

    The MAC is checked in constant time before the payload is read. Never raises.
    """
    if len(token) > MAX_SIGNED_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != version:
        return None
    _, payload, mac = parts
    try:
        given = _b64decode(mac)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _mac(key, f"{version}.{payload}")):
        return None
    try:
        fields = orjson.loads(_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    if (
        not isinstance(fields, list)
        or len(fields) != count
        or not all(isinstance(field, str) and field for field in fields)
    ):
        return None
    return tuple(fields)


def webhook_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of `<message_id>.<timestamp>.<body>` under `key`: a Standard
    Webhooks (or Svix) signature, without its `v1,` prefix."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
