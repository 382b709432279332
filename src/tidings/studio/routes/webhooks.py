"""Integrations → Outbound webhooks: endpoints, their event types and secret, and the
deliveries log with its answers and a Replay button.

Every change goes through `tidings.webhook_out.service`, as `/webhooks/...` does. A secret
is shown in clear once, in the answer to the form that made it (creating the endpoint or
rotating its secret); afterwards only its last four characters.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from fastapi import APIRouter, Path
from starlette.datastructures import FormData
from starlette.responses import Response

from tidings.dependencies import ConfigCipherDep, OutboundDep
from tidings.errors import AppError
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, see_other
from tidings.studio.templating import render_form
from tidings.webhook_out import service
from tidings.webhook_out.events import EVENT_TYPES
from tidings.webhook_out.repository import DeliveryFilter

router = APIRouter()

WEBHOOKS_PAGE = f"{PREFIX}/webhooks"
# The deliveries a page shows, newest first (the API pages through all of them).
LOG_ROWS = 50
FLASHES = {
    "deleted": "Endpoint deleted, with its deliveries log.",
    "saved": "Endpoint saved.",
    "replayed": "Replay queued: a new delivery of the same event, with the same `webhook-id`.",
}


def _event_types(form: FormData) -> list[str]:
    return [value for value in form.getlist("event_types") if isinstance(value, str)]


def _log(page: Page, endpoint_id: str | None) -> list[dict[str, Any]]:
    with page.database.read() as session:
        where = DeliveryFilter(endpoint_id=endpoint_id)
        found = service.deliveries(session, page.scope, where, None, LOG_ROWS)
        return [service.delivery_view(row) for row in found.rows]


def _list_page(
    page: Page,
    fernet: Fernet,
    *,
    error: AppError | None = None,
    values: dict[str, Any] | None = None,
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        endpoints = [service.view(fernet, row) for row in service.listing(session, page.scope)]
    return render_form(
        page.request,
        "webhooks.html",
        error,
        section="webhooks",
        endpoints=endpoints,
        by_id={endpoint["id"]: endpoint for endpoint in endpoints},
        deliveries=_log(page, None),
        event_types=EVENT_TYPES,
        values=values or {"event_types": []},
        flash=flash,
    )


def _endpoint_page(
    page: Page,
    fernet: Fernet,
    endpoint_id: str,
    *,
    status_code: int = 200,
    new_secret: str | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        endpoint = service.view(fernet, service.get(session, page.scope, endpoint_id))
    return render_form(
        page.request,
        "webhook.html",
        error,
        status_code,
        section="webhooks",
        endpoint=endpoint,
        deliveries=_log(page, endpoint_id),
        event_types=EVENT_TYPES,
        new_secret=new_secret,
        flash=flash,
    )


EndpointId = Path(max_length=40)


@router.get("/webhooks")
def webhooks_page(page: Page, config_cipher: ConfigCipherDep) -> Response:
    return _list_page(page, config_cipher, flash=page.flash(FLASHES))


@router.post("/webhooks")
def create_endpoint(
    page: Page, form: CheckedForm, config_cipher: ConfigCipherDep, outbound: OutboundDep
) -> Response:
    """Register an endpoint; its page answers, with the secret shown this once."""
    url, description = form_text(form, "url"), form_text(form, "description")
    event_types = _event_types(form)
    values = {"url": url, "description": description, "event_types": event_types}
    try:
        with page.database.write() as (session, _):
            row, secret = service.create(
                session,
                page.scope,
                config_cipher,
                outbound,
                url=url,
                event_types=event_types,
                description=description,
            )
            endpoint_id = row.id
    except AppError as exc:
        return _list_page(page, config_cipher, error=exc, values=values)
    return _endpoint_page(page, config_cipher, endpoint_id, status_code=201, new_secret=secret)


@router.get("/webhooks/{endpoint_id}")
def endpoint_page(
    page: Page, config_cipher: ConfigCipherDep, endpoint_id: str = EndpointId
) -> Response:
    return _endpoint_page(page, config_cipher, endpoint_id, flash=page.flash(FLASHES))


@router.post("/webhooks/{endpoint_id}")
def save_endpoint(
    page: Page,
    form: CheckedForm,
    config_cipher: ConfigCipherDep,
    outbound: OutboundDep,
    endpoint_id: str = EndpointId,
) -> Response:
    """Save the URL, description, event types and whether it is enabled."""
    try:
        with page.database.write() as (session, _):
            service.update(
                session,
                page.scope,
                outbound,
                endpoint_id,
                url=form_text(form, "url"),
                description=form_text(form, "description"),
                event_types=_event_types(form),
                enabled=form_text(form, "enabled") == "on",
            )
    except AppError as exc:
        return _endpoint_page(page, config_cipher, endpoint_id, error=exc)
    return see_other(f"{WEBHOOKS_PAGE}/{endpoint_id}", "saved")


@router.post("/webhooks/{endpoint_id}/rotate")
def rotate_secret(
    page: Page, form: CheckedForm, config_cipher: ConfigCipherDep, endpoint_id: str = EndpointId
) -> Response:
    """A new secret, shown this once; the previous one still signs for 24 hours."""
    with page.database.write() as (session, _):
        _, secret = service.rotate_secret(session, page.scope, config_cipher, endpoint_id)
    return _endpoint_page(page, config_cipher, endpoint_id, status_code=201, new_secret=secret)


@router.post("/webhooks/{endpoint_id}/delete")
def delete_endpoint(page: Page, form: CheckedForm, endpoint_id: str = EndpointId) -> Response:
    with page.database.write() as (session, _):
        service.delete(session, page.scope, endpoint_id)
    return see_other(WEBHOOKS_PAGE, "deleted")


@router.post("/webhook-deliveries/{delivery_id}/replay")
def replay_delivery(
    page: Page,
    form: CheckedForm,
    config_cipher: ConfigCipherDep,
    delivery_id: int = Path(ge=1, lt=2**63),
) -> Response:
    """Queue the delivery's event to its endpoint again; back to the page it was asked from."""
    back = form_text(form, "back")
    try:
        with page.database.write() as (session, outbox):
            row = service.replay(session, outbox, page.scope, delivery_id)
            endpoint_id = row.endpoint_id
    except AppError as exc:
        return _list_page(page, config_cipher, error=exc)
    if back == "list":
        return see_other(WEBHOOKS_PAGE, "replayed")
    return see_other(f"{WEBHOOKS_PAGE}/{endpoint_id}", "replayed")
