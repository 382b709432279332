"""Signed sources: their management API (`/sources`, API key) and the webhook receiver
`POST /inbound/segment/webhook/{source_id}` for Segment's generic Webhooks destination."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tidings.db import Database
from tidings.dependencies import Caller, ConfigCipherDep, DatabaseDep, ReadSession
from tidings.errors import BadRequest, NotFound, Unauthorized
from tidings.ingest import sources
from tidings.ingest.signature import verify
from tidings.ingest.tracking import read_within, submit
from tidings.ingest.validation import ValidEvent, parse_json, validate_segment_event
from tidings.ingest.writer import IngestItem
from tidings.kit.time import utcnow
from tidings.models import SignedSource
from tidings.routing import ApiRoute
from tidings.workspace.service import Scope

router = APIRouter(tags=["signed sources"], route_class=ApiRoute)

MAX_WEBHOOK_BYTES = 4 * 1024 * 1024


class SourceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="A label, unique in the environment.")
    secret: str | None = Field(
        default=None,
        description="The shared secret typed into Segment (16-200 characters); left out, "
        "Tidings generates one and returns it once.",
    )


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(default=None, description="As for `POST /sources`.")


@dataclass(frozen=True, slots=True)
class SourceDesk:
    """What the endpoints that manage signed sources share: the caller, the key the sources'
    secrets are encrypted under, the database, and the request (a source's webhook `url` is
    on its base URL)."""

    request: Request
    caller: Scope
    fernet: Fernet
    database: Database

    def view(self, row: SignedSource) -> dict[str, Any]:
        """The source as the API shows it: `sources.view`, with the webhook's full URL."""
        view = sources.view(self.fernet, row)
        return {**view, "url": str(self.request.base_url).rstrip("/") + view["path"]}


def source_desk(
    request: Request, caller: Caller, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> SourceDesk:
    return SourceDesk(request, caller, config_cipher, database)


Desk = Annotated[SourceDesk, Depends(source_desk)]


def _json(body: dict[str, Any], status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.post("/sources", status_code=201)
def create_source(body: SourceBody, desk: Desk) -> Response:
    """Create a signed source. The answer holds the secret in clear, this once."""
    with desk.database.write() as (session, _):
        row, secret = sources.create(session, desk.caller, desk.fernet, body.name, body.secret)
        view = desk.view(row)
    return _json({**view, "secret": secret["value"]}, 201)


@router.get("/sources")
def list_sources(desk: Desk, session: ReadSession) -> Response:
    rows = sources.listing(session, desk.caller)
    return _json({"results": [desk.view(row) for row in rows]})


@router.get("/sources/{source_id}")
def get_source(source_id: str, desk: Desk, session: ReadSession) -> Response:
    """The source, its secrets' ids and hints, and its count of refused signatures."""
    return _json(desk.view(sources.get(session, desk.caller, source_id)))


@router.delete("/sources/{source_id}", status_code=204)
def delete_source(source_id: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        sources.delete(session, caller, source_id)
    return Response(status_code=204)


@router.post("/sources/{source_id}/secrets", status_code=201)
def add_secret(source_id: str, body: SecretBody, desk: Desk) -> Response:
    """Add a second secret for a rotation: both are accepted until the old one is removed."""
    with desk.database.write() as (session, _):
        row, secret = sources.add_secret(session, desk.caller, desk.fernet, source_id, body.secret)
        view = desk.view(row)
    return _json({**view, "secret": secret["value"], "secret_id": secret["id"]}, 201)


@router.delete("/sources/{source_id}/secrets/{secret_id}")
def remove_secret(source_id: str, secret_id: str, desk: Desk) -> Response:
    with desk.database.write() as (session, _):
        row = sources.remove_secret(session, desk.caller, desk.fernet, source_id, secret_id)
        view = desk.view(row)
    return _json(view)


# -- the receiver ------------------------------------------------------------------------------


def _too_large() -> BadRequest:
    return BadRequest(
        f"The body is over {MAX_WEBHOOK_BYTES // (1024 * 1024)} MB. Lower the batch size of "
        "Segment's Webhooks destination.",
        code="batch_too_large",
    )


def _events(body: bytes) -> list[ValidEvent]:
    parsed = parse_json(body)
    if isinstance(parsed, dict):
        return [validate_segment_event(parsed)]
    if not isinstance(parsed, list):
        raise BadRequest(
            "The body must be one Segment event (a JSON object) or a batch of them (an array).",
            code="invalid_event",
        )
    events = []
    for index, item in enumerate(parsed):
        try:
            events.append(validate_segment_event(item))
        except BadRequest as exc:
            field = f"[{index}].{exc.field}" if exc.field else f"[{index}]"
            raise BadRequest(f"[{index}]: {exc.message}", code=exc.code, field=field) from exc
    return events


def _check_signature(
    database: Database, config_cipher: Fernet, source_id: str, body: bytes, signature: str | None
) -> sources.Verifier:
    """The source's verifier once the signature matches; counts and raises otherwise."""
    with database.read() as session:
        found = sources.verifier(session, config_cipher, source_id)
    if found is None:
        raise NotFound(
            f"No signed source {source_id!r}. Copy the webhook URL from GET /sources.",
            code="unknown_source",
        )
    if verify(body, signature, found.secrets):
        return found
    with database.write() as (session, _):
        sources.record_signature_failure(session, source_id, utcnow())
    if not signature:
        raise Unauthorized(
            "Missing X-Signature. Set the shared secret in Segment's Webhooks destination "
            "settings to this source's secret, so Segment signs every request.",
            code="missing_signature",
        )
    raise Unauthorized(
        "X-Signature does not match: it must be the hex HMAC-SHA1 of the raw body under one of "
        "this source's secrets. Check that Segment's shared secret equals the one in Tidings "
        "(GET /sources/{id} shows the last four characters).",
        code="invalid_signature",
    )


@router.post("/inbound/segment/webhook/{source_id}")
async def segment_webhook(
    source_id: str, request: Request, database: DatabaseDep, config_cipher: ConfigCipherDep
) -> Response:
    """Segment's generic Webhooks destination, verified by `X-Signature`.

    200 `{"success": true}` once the events are committed; they are processed like every
    Segment event. 401 for a missing or wrong signature (counted on the source).
    """
    body = await read_within(
        request.stream(), request.headers.get("content-length"), MAX_WEBHOOK_BYTES, _too_large
    )
    signature = request.headers.get("x-signature")
    found = await asyncio.to_thread(
        _check_signature, database, config_cipher, source_id, body, signature
    )
    events = _events(body)
    writer = request.app.state.ingest_writer
    await submit(writer, [IngestItem(key=None, event=event, scope=found.scope) for event in events])
    return _json({"success": True})
