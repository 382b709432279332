"""`tidings apply PATH`: automations, notification templates and audiences from YAML files.

Each YAML document is `{kind: automation | notification | audience, id, ...body}`, the body
being what PUT /automations/{id}, PUT /notifications/{id} or PUT /audiences/{id} takes.
Everything is saved in one transaction, notifications and audiences first, so an
automation's send steps may name templates of the same files (and its invoke steps
automations of the same files); any error saves nothing.
Applying the same files again changes nothing and reports `unchanged`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from tidings.audience import service as audience_service
from tidings.audience.schemas import AudienceBody
from tidings.automation import service
from tidings.db import Outbox
from tidings.errors import AppError, BadRequest, NotFound
from tidings.kit.outbound import OutboundGuard
from tidings.notification import service as notification_service
from tidings.notification.schemas import NotificationBody
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import Scope, default_workspace

KINDS = ("automation", "notification", "audience")

Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Document:
    kind: str
    id: str
    body: dict[str, Any]
    source: str


class ApplyError(BadRequest):
    code = "invalid_definition_file"


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if path.is_file():
        return [path]
    raise ApplyError(f"{path}: no such file or directory")


def read_documents(path: Path) -> list[Document]:
    """Every document in a YAML file, or in the *.yaml/*.yml files of a directory (by name)."""
    documents: list[Document] = []
    seen: dict[tuple[str, str], str] = {}
    for file in _files(path):
        try:
            loaded = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ApplyError(f"{file}: not valid YAML: {exc}") from exc
        for index, raw in enumerate(loaded):
            source = f"{file} (document {index + 1})"
            if raw is None:
                continue
            if not isinstance(raw, dict):
                raise ApplyError(f"{source}: a document must be a mapping with kind and id")
            body = dict(raw)
            kind, object_id = body.pop("kind", None), body.pop("id", None)
            if kind not in KINDS:
                raise ApplyError(
                    f"{source}: kind must be automation, notification or audience, not {kind!r}"
                )
            if not isinstance(object_id, str) or not object_id:
                raise ApplyError(f"{source}: needs an id (a string)")
            if (kind, object_id) in seen:
                earlier = seen[(kind, object_id)]
                raise ApplyError(f"{source}: {kind} {object_id!r} is already defined in {earlier}")
            seen[(kind, object_id)] = source
            documents.append(Document(kind, object_id, body, source))
    return documents


def environment_scope(session: Session, environment: str) -> Scope:
    """The scope of the default workspace's environment named `environment`."""
    workspace = default_workspace(session)
    row = WorkspaceRepository(session).environment_by_name(workspace.id, environment)
    if row is None:
        raise NotFound(f"The workspace has no {environment!r} environment.")
    return Scope(workspace.id, row.id, row.name, key_id="cli")


def _body(model: type[Body], document: Document) -> Body:
    """The document's body as the API's `model`; the first error names its field."""
    try:
        return model.model_validate(document.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApplyError(f"{where}: {first['msg']}", field=where) from exc


def _apply_notification(session: Session, scope: Scope, document: Document) -> str:
    body = _body(NotificationBody, document)
    _, _, outcome = notification_service.save(session, scope, document.id, body)
    return outcome


def _apply_audience(session: Session, outbox: Outbox, scope: Scope, document: Document) -> str:
    body = _body(AudienceBody, document)
    given = audience_service.AudienceInput(
        body.name, body.description, body.condition, body.filter, body.operator
    )
    _, outcome = audience_service.put_audience(session, outbox, scope, document.id, given)
    return outcome


def apply_documents(
    session: Session,
    outbox: Outbox,
    scope: Scope,
    documents: list[Document],
    outbound: OutboundGuard,
) -> list[str]:
    """Save each document through the API's validation; one line per object, e.g.
    `created automation welcome`. Raises ApplyError naming the file and field on bad input."""
    lines = []
    ordered = sorted(documents, key=lambda document: document.kind == "automation")
    # An automation may invoke one defined later in the files.
    automations = {d.id for d in documents if d.kind == "automation"}
    for document in ordered:
        try:
            if document.kind == "notification":
                outcome = _apply_notification(session, scope, document)
            elif document.kind == "audience":
                outcome = _apply_audience(session, outbox, scope, document)
            else:
                _, _, outcome = service.save(
                    session,
                    scope,
                    document.id,
                    document.body,
                    outbound=outbound,
                    coming=automations,
                )
        except AppError as exc:
            raise ApplyError(
                f"{document.source}: {document.kind} {document.id}: {exc.message}"
            ) from exc
        lines.append(f"{outcome} {document.kind} {document.id}")
    return lines


def apply_path(
    session: Session, outbox: Outbox, environment: str, path: Path, outbound: OutboundGuard
) -> list[str]:
    """Apply a YAML file or directory to an environment of the default workspace."""
    documents = read_documents(path)
    return apply_documents(
        session, outbox, environment_scope(session, environment), documents, outbound
    )
