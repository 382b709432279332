"""Rules for workspaces, environments and API keys."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.errors import BadRequest, NotFound
from tidings.kit.ids import new_id
from tidings.kit.time import utcnow
from tidings.models import ApiKey, Environment, Workspace
from tidings.workspace.keys import KeyCipher, generate_key, hash_key, hint
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.scopes import ENVIRONMENTS, KEY_SCOPES, SECRET

DEFAULT_WORKSPACE_NAME = "Default workspace"


@dataclass(frozen=True, slots=True)
class Scope:
    """What an API key opens: one environment of one workspace, with the key's scope."""

    workspace_id: str
    environment_id: str
    environment: str
    key_id: str
    key_scope: str = SECRET


@dataclass(frozen=True, slots=True)
class KeyView:
    id: str
    workspace_id: str
    environment: str
    key: str | None
    hint: str
    created_at: datetime
    revoked_at: datetime | None
    scope: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "environment": self.environment,
            "scope": self.scope,
            "key": self.key,
            "hint": self.hint,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def bootstrap(session: Session, cipher: KeyCipher) -> list[KeyView] | None:
    """On first start: the default workspace, its two environments and a key for each.

    Returns the new keys, or None when a workspace already exists.
    """
    repository = WorkspaceRepository(session)
    if repository.first_workspace() is not None:
        return None
    now = utcnow()
    workspace = Workspace(id=new_id("ws"), name=DEFAULT_WORKSPACE_NAME, created_at=now)
    repository.add(workspace)
    session.flush()
    created = []
    for name in ENVIRONMENTS:
        environment = Environment(
            id=new_id("env"), workspace_id=workspace.id, name=name, created_at=now
        )
        repository.add(environment)
        session.flush()
        created.append(_create_key(session, cipher, workspace.id, environment))
    return created


def default_workspace(session: Session) -> Workspace:
    workspace = WorkspaceRepository(session).first_workspace()
    if workspace is None:
        raise NotFound("No workspace yet. Start Tidings once with `tidings serve` to create it.")
    return workspace


def _create_key(
    session: Session,
    cipher: KeyCipher,
    workspace_id: str,
    environment: Environment,
    scope: str = SECRET,
) -> KeyView:
    key = generate_key(environment.name)
    row = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        environment_id=environment.id,
        key_hash=hash_key(key),
        key_ciphertext=cipher.encrypt(key),
        key_hint=hint(key),
        scope=scope,
        created_at=utcnow(),
        revoked_at=None,
    )
    WorkspaceRepository(session).add(row)
    session.flush()
    return KeyView(
        row.id, workspace_id, environment.name, key, row.key_hint, row.created_at, None, scope
    )


def create_key(
    session: Session, cipher: KeyCipher, environment_name: str, scope: str = SECRET
) -> KeyView:
    if environment_name not in ENVIRONMENTS:
        raise BadRequest(
            f"Unknown environment {environment_name!r}: use 'test' or 'production'.",
            field="environment",
        )
    if scope not in KEY_SCOPES:
        raise BadRequest(
            f"Unknown key scope {scope!r}: use 'secret' (the whole API) or 'ingest' (only the "
            "Tracking API, /inbound/segment and /debug, safe to put in a web page).",
            field="scope",
        )
    workspace = default_workspace(session)
    environment = WorkspaceRepository(session).environment_by_name(workspace.id, environment_name)
    if environment is None:
        raise NotFound(f"The workspace has no {environment_name!r} environment.")
    return _create_key(session, cipher, workspace.id, environment, scope)


def list_keys(session: Session, cipher: KeyCipher) -> list[KeyView]:
    workspace = default_workspace(session)
    return [
        KeyView(
            key.id,
            key.workspace_id,
            environment.name,
            cipher.decrypt(key.key_ciphertext),
            key.key_hint,
            key.created_at,
            key.revoked_at,
            key.scope,
        )
        for key, environment in WorkspaceRepository(session).keys(workspace.id)
    ]


def revoke_key(session: Session, key_id: str) -> ApiKey:
    key = WorkspaceRepository(session).key(key_id)
    if key is None:
        raise NotFound(f"No API key {key_id!r}. `tidings keys list` shows the key ids.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def resolve_keys(session: Session, cipher: KeyCipher, presented: Iterable[str]) -> dict[str, Scope]:
    """Map each presented key that is valid and not revoked to its scope, in one query."""
    by_hash = {hash_key(key): key for key in set(presented)}
    if not by_hash:
        return {}
    resolved: dict[str, Scope] = {}
    for row, environment in WorkspaceRepository(session).keys_by_hash(by_hash):
        key = by_hash[row.key_hash]
        if row.revoked_at is None and cipher.matches(row.key_ciphertext, key):
            resolved[key] = Scope(
                row.workspace_id, row.environment_id, environment, row.id, row.scope
            )
    return resolved


def active_key_ids(session: Session, key_ids: Iterable[str]) -> set[str]:
    """The ids among `key_ids` of keys that exist and are not revoked."""
    return WorkspaceRepository(session).active_key_ids(key_ids)
