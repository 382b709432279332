"""Outbound webhook endpoints and their deliveries: the rules.

An endpoint belongs to one environment: a URL, the event types it wants, a description, and
its signing secret, encrypted with the provider-config key like a provider's secrets. The
secret is shown once, when the endpoint is made and at each rotation; reads show its last four
characters. After a rotation the previous secret still signs (a second signature in the
same header) for PREVIOUS_SECRET_HOURS, so a receiver can switch without dropping a request.

An event becomes deliveries in the transaction of what it reports (`emit`): one row per
enabled endpoint subscribed to its type, and a job in the unit of work's outbox for each;
no request is made inside a transaction (webhook_out/delivery.py makes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

import orjson
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.db import Outbox
from tidings.errors import BadRequest, Conflict, found
from tidings.kit.ids import new_id
from tidings.kit.missing import Missing
from tidings.kit.outbound import OutboundGuard, OutboundRefused, url_target
from tidings.kit.pagination import Page, page
from tidings.kit.time import isoformat, utcnow
from tidings.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from tidings.webhook_out import signing
from tidings.webhook_out.events import EVENT_TYPES, Emission
from tidings.webhook_out.repository import DeliveryFilter, WebhookRepository
from tidings.workspace.service import Scope

_missing_endpoint = Missing(
    "webhook endpoint", "GET /webhooks/endpoints lists them.", code="unknown_webhook_endpoint"
)
_missing_delivery = Missing(
    "webhook delivery", "GET /webhooks/deliveries lists them.", code="unknown_webhook_delivery"
)

MAX_ENDPOINTS = 50
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
PREVIOUS_SECRET_HOURS = 24


class StoredSecret(TypedDict):
    value: str
    created_at: str
    # Set on the previous secret at a rotation: it signs until then.
    expires_at: str | None


# -- endpoints -----------------------------------------------------------------------------


def _secrets(fernet: Fernet, row: WebhookEndpoint) -> list[StoredSecret]:
    stored: list[StoredSecret] = orjson.loads(fernet.decrypt(row.secrets_ciphertext))
    return stored


def _store(fernet: Fernet, row: WebhookEndpoint, stored: list[StoredSecret]) -> None:
    row.secrets_ciphertext = fernet.encrypt(orjson.dumps(stored))


def _new_stored(secret: str, now: datetime) -> StoredSecret:
    return StoredSecret(value=secret, created_at=isoformat(now) or "", expires_at=None)


def signing_secrets(fernet: Fernet, row: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a request now: the current one first, then a previous one
    that has not expired."""
    moment = isoformat(now) or ""
    return [
        secret["value"]
        for secret in _secrets(fernet, row)
        if secret["expires_at"] is None or secret["expires_at"] > moment
    ]


def _url(guard: OutboundGuard, url: str) -> str:
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise BadRequest(
            f"`url` must be an http or https URL of at most {MAX_URL_LENGTH} characters.",
            code="invalid_url",
            field="url",
        )
    try:
        url_target(url)
        guard.check_url(url)
    except OutboundRefused as exc:
        raise BadRequest(f"url: {exc}.", code="outbound_refused", field="url") from exc
    return url


def _event_types(event_types: Sequence[str]) -> list[str]:
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown or not event_types:
        raise BadRequest(
            (f"Unknown event type {unknown[0]!r}. " if unknown else "No event type given. ")
            + "`event_types` is a list of: "
            + ", ".join(EVENT_TYPES)
            + ".",
            code="invalid_event_types",
            field="event_types",
        )
    return [name for name in EVENT_TYPES if name in set(event_types)]


def _description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(
            f"`description` is over {MAX_DESCRIPTION_LENGTH} characters.",
            code="invalid_description",
            field="description",
        )
    return description


def view(fernet: Fernet, row: WebhookEndpoint) -> dict[str, Any]:
    """The endpoint as reads show it: the secret by its last four characters only."""
    current = _secrets(fernet, row)[0]
    return {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "event_types": list(row.event_types),
        "enabled": row.enabled,
        "secret_hint": "…" + current["value"][-4:],
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }


def create(
    session: Session,
    scope: Scope,
    fernet: Fernet,
    guard: OutboundGuard,
    *,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (to be shown this once)."""
    repository = WebhookRepository(session)
    row_url = _url(guard, url)
    types = _event_types(event_types)
    text = _description(description)
    if repository.count_endpoints(scope.environment_id) >= MAX_ENDPOINTS:
        raise Conflict(
            f"An environment has {MAX_ENDPOINTS} webhook endpoints at most; delete one first.",
            code="too_many_endpoints",
        )
    now = utcnow()
    secret = signing.new_secret()
    row = WebhookEndpoint(
        id=new_id("whe"),
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        url=row_url,
        description=text,
        event_types=types,
        enabled=enabled,
        created_at=now,
        updated_at=now,
    )
    _store(
        fernet, row, [StoredSecret(value=secret, created_at=isoformat(now) or "", expires_at=None)]
    )
    repository.add_endpoint(row)
    return row, secret


def listing(session: Session, scope: Scope) -> Sequence[WebhookEndpoint]:
    return WebhookRepository(session).endpoints(scope.environment_id)


def get(session: Session, scope: Scope, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint:
    return found(
        WebhookRepository(session).endpoint(scope.environment_id, endpoint_id, lock=lock),
        _missing_endpoint(endpoint_id),
    )


def update(
    session: Session,
    scope: Scope,
    guard: OutboundGuard,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given; the rest stays."""
    row = get(session, scope, endpoint_id, lock=True)
    if url is not None:
        row.url = _url(guard, url)
    if description is not None:
        row.description = _description(description)
    if enabled is not None:
        row.enabled = enabled
    if event_types is not None:
        row.event_types = _event_types(event_types)
        WebhookRepository(session).subscribe(row)
    row.updated_at = utcnow()
    return row


def rotate_secret(
    session: Session, scope: Scope, fernet: Fernet, endpoint_id: str
) -> tuple[WebhookEndpoint, str]:
    """A new secret (to be shown this once); the one it replaces signs for another
    PREVIOUS_SECRET_HOURS, and any older one stops."""
    row = get(session, scope, endpoint_id, lock=True)
    now = utcnow()
    current = _secrets(fernet, row)[0]
    expires = isoformat(now + timedelta(hours=PREVIOUS_SECRET_HOURS))
    secret = signing.new_secret()
    _store(
        fernet,
        row,
        [
            StoredSecret(value=secret, created_at=isoformat(now) or "", expires_at=None),
            StoredSecret(
                value=current["value"], created_at=current["created_at"], expires_at=expires
            ),
        ],
    )
    row.updated_at = now
    return row, secret


def delete(session: Session, scope: Scope, endpoint_id: str) -> None:
    WebhookRepository(session).delete_endpoint(get(session, scope, endpoint_id))


# -- events --------------------------------------------------------------------------------


def emit(session: Session, outbox: Outbox, emission: Emission) -> list[int]:
    """The event's deliveries, in the caller's transaction, each with a job after its
    commit; none (one index lookup) when no enabled endpoint wants the type."""
    ids = WebhookRepository(session).emit(emission, utcnow())
    for delivery_id in ids:
        outbox.add_webhook(delivery_id)
    return ids


# -- deliveries ----------------------------------------------------------------------------


def delivery_view(row: WebhookDelivery, *, with_body: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": isoformat(row.next_attempt_at),
        "last_attempt_at": isoformat(row.last_attempt_at),
        "response": {
            "status": row.response_status,
            "body": row.response_body,
            "latency_ms": row.response_ms,
            "error": row.error,
        },
        "replay_of": row.replay_of,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
    }
    if with_body:
        view["payload"] = orjson.loads(row.body)
    return view


def deliveries(
    session: Session, scope: Scope, where: DeliveryFilter, before_id: int | None, limit: int
) -> Page[WebhookDelivery]:
    """A page of the environment's deliveries that match `where`, newest first."""
    if where.status is not None and where.status not in WebhookDeliveryStatus.ALL:
        raise BadRequest(
            f"`status` is one of {', '.join(WebhookDeliveryStatus.ALL)}.",
            code="invalid_status",
            field="status",
        )
    if where.event_type is not None and where.event_type not in EVENT_TYPES:
        raise BadRequest(
            f"`event_type` is one of {', '.join(EVENT_TYPES)}.",
            code="invalid_event_type",
            field="event_type",
        )
    rows = WebhookRepository(session).deliveries_page(
        scope.environment_id, where, before_id, limit + 1
    )
    return page(rows, limit)


def get_delivery(session: Session, scope: Scope, delivery_id: int) -> WebhookDelivery:
    return found(
        WebhookRepository(session).delivery(scope.environment_id, delivery_id),
        _missing_delivery(delivery_id),
    )


# What a replay keeps of the delivery it replays: the same event (its id and exact body) for
# the same endpoint. Its attempts and their outcome start afresh.
REPLAYED_COLUMNS = (
    "workspace_id",
    "environment_id",
    "endpoint_id",
    "event_id",
    "event_type",
    "body",
)


def replay(session: Session, outbox: Outbox, scope: Scope, delivery_id: int) -> WebhookDelivery:
    """Send a delivery's event to its endpoint again, as a new delivery with its own
    attempts: the same body and `webhook-id` (a receiver that kept the first drops it)."""
    original = get_delivery(session, scope, delivery_id)
    repository = WebhookRepository(session)
    endpoint = repository.endpoint(scope.environment_id, original.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise Conflict(
            f"The endpoint {original.endpoint_id} is disabled: enable it (PATCH "
            f"/webhooks/endpoints/{original.endpoint_id} with enabled true), then replay.",
            code="webhook_endpoint_disabled",
        )
    now = utcnow()
    row = WebhookDelivery(
        **{column: getattr(original, column) for column in REPLAYED_COLUMNS},
        status=WebhookDeliveryStatus.PENDING,
        attempts=0,
        replay_of=original.id,
        created_at=now,
        updated_at=now,
    )
    repository.add_delivery(row)
    outbox.add_webhook(row.id)
    return row
