"""Secrets at rest: a server secret, and Fernet encryption derived from it."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

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


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
