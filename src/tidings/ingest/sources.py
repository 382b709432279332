"""Signed sources: senders that prove themselves with `X-Signature`, not an API key.

A source belongs to one environment. Its shared secrets (one, or two while rotating) are
stored encrypted as one JSON list with the provider-config key (`runtime.config_cipher`) and
are write-only: reads show an id and the last four characters. Requests refused for a
missing or wrong signature are counted on the source's row.
"""

from __future__ import annotations

import secrets as secrets_module
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import orjson
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.errors import BadRequest, Conflict, NotFound, found
from tidings.ingest.repository import SignedSourceRepository
from tidings.kit.ids import new_id
from tidings.kit.time import isoformat, utcnow
from tidings.models import SignedSource
from tidings.workspace.service import Scope

MAX_SECRETS = 2
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200
WEBHOOK_PATH = "/inbound/segment/webhook/{source_id}"


class StoredSecret(TypedDict):
    """A shared secret, as the source's encrypted list keeps it."""

    id: str
    value: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Verifier:
    """What verifying a webhook request needs: the scope its events belong to, the secrets."""

    scope: Scope
    secrets: list[str]


def _secrets(fernet: Fernet, row: SignedSource) -> list[StoredSecret]:
    stored: list[StoredSecret] = orjson.loads(fernet.decrypt(row.secrets_ciphertext))
    return stored


def _store(fernet: Fernet, row: SignedSource, stored: Sequence[StoredSecret]) -> None:
    row.secrets_ciphertext = fernet.encrypt(orjson.dumps(list(stored)))
    row.updated_at = utcnow()


def _new_secret(value: str | None) -> StoredSecret:
    if value is None:
        value = secrets_module.token_urlsafe(32)
    elif not MIN_SECRET_LENGTH <= len(value) <= MAX_SECRET_LENGTH:
        raise BadRequest(
            f"`secret` must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters long; "
            "leave it out and Tidings generates one.",
            code="invalid_secret",
            field="secret",
        )
    return StoredSecret(id=new_id("sec"), value=value, created_at=isoformat(utcnow()) or "")


def _shown(secret: StoredSecret) -> dict[str, str]:
    """A secret as reads show it: write-only, so its id and last four characters."""
    return {
        "id": secret["id"],
        "hint": "…" + secret["value"][-4:],
        "created_at": secret["created_at"],
    }


def view(fernet: Fernet, row: SignedSource) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "path": WEBHOOK_PATH.format(source_id=row.id),
        "secrets": [_shown(secret) for secret in _secrets(fernet, row)],
        "signature_failures": row.signature_failures,
        "last_signature_failure_at": isoformat(row.last_signature_failure_at),
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def _row(session: Session, scope: Scope, source_id: str) -> SignedSource:
    return found(
        SignedSourceRepository(session).get(scope, source_id),
        NotFound(
            f"No signed source {source_id!r} in this environment. GET /sources lists them.",
            code="unknown_source",
        ),
    )


def create(
    session: Session, scope: Scope, fernet: Fernet, name: str, secret: str | None
) -> tuple[SignedSource, StoredSecret]:
    name = name.strip()
    if not name or len(name) > 100:
        raise BadRequest(
            "`name` must be 1 to 100 characters, e.g. “Segment webhooks”.",
            code="invalid_name",
            field="name",
        )
    stored = _new_secret(secret)
    repository = SignedSourceRepository(session)
    taken = repository.id_named(scope, name)
    if taken is not None:
        raise Conflict(
            f"A signed source named {name!r} already exists in this environment ({taken}).",
            code="source_exists",
            field="name",
        )
    now = utcnow()
    row = SignedSource(
        id=new_id("src"),
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        name=name,
        signature_failures=0,
        created_at=now,
        updated_at=now,
    )
    _store(fernet, row, [stored])
    repository.add(row)
    return row, stored


def listing(session: Session, scope: Scope) -> Sequence[SignedSource]:
    return SignedSourceRepository(session).listing(scope)


def get(session: Session, scope: Scope, source_id: str) -> SignedSource:
    return _row(session, scope, source_id)


def delete(session: Session, scope: Scope, source_id: str) -> None:
    SignedSourceRepository(session).delete(_row(session, scope, source_id))


def add_secret(
    session: Session, scope: Scope, fernet: Fernet, source_id: str, secret: str | None
) -> tuple[SignedSource, StoredSecret]:
    row = _row(session, scope, source_id)
    stored = _secrets(fernet, row)
    if len(stored) >= MAX_SECRETS:
        raise Conflict(
            f"The source already has {MAX_SECRETS} active secrets. To rotate, remove the old "
            f"one (DELETE /sources/{source_id}/secrets/<id>) once Segment uses the new one.",
            code="too_many_secrets",
        )
    new = _new_secret(secret)
    _store(fernet, row, [*stored, new])
    return row, new


def remove_secret(
    session: Session, scope: Scope, fernet: Fernet, source_id: str, secret_id: str
) -> SignedSource:
    row = _row(session, scope, source_id)
    stored = _secrets(fernet, row)
    remaining = [secret for secret in stored if secret["id"] != secret_id]
    if len(remaining) == len(stored):
        raise NotFound(f"The source has no secret {secret_id!r}.", code="unknown_secret")
    if not remaining:
        raise Conflict(
            "This is the source's only secret; add the new one first, then remove this one.",
            code="last_secret",
        )
    _store(fernet, row, remaining)
    return row


def verifier(session: Session, fernet: Fernet, source_id: str) -> Verifier | None:
    """The source's scope and secrets, or None when there is no such source."""
    found = SignedSourceRepository(session).with_environment_name(source_id)
    if found is None:
        return None
    row, environment = found
    scope = Scope(row.workspace_id, row.environment_id, environment, row.id)
    return Verifier(scope, [secret["value"] for secret in _secrets(fernet, row)])


def record_signature_failure(session: Session, source_id: str, at: datetime) -> None:
    SignedSourceRepository(session).record_signature_failure(source_id, at)
