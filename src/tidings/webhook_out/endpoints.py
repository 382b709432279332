"""The outbound webhooks API: endpoints (`/webhooks/endpoints`) and the deliveries log
(`/webhooks/deliveries`), with replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tidings.dependencies import Caller, ConfigCipherDep, DatabaseDep, OutboundDep, ReadSession
from tidings.kit.pagination import PageOf50, Paging
from tidings.routing import ApiRoute
from tidings.webhook_out import service
from tidings.webhook_out.repository import DeliveryFilter
from tidings.webhook_out.schemas import (
    DeliveryPage,
    DeliveryStatus,
    DeliveryView,
    EndpointBody,
    EndpointList,
    EndpointPatch,
    EndpointView,
    EndpointWithSecret,
    EventType,
)

router = APIRouter(prefix="/webhooks", tags=["outbound webhooks"], route_class=ApiRoute)

MAX_ID_LENGTH = 40
EndpointId = Annotated[str, Path(max_length=MAX_ID_LENGTH)]
DeliveryId = Annotated[int, Path(ge=1, lt=2**63)]


@router.post("/endpoints", status_code=201, response_model=EndpointWithSecret)
def create_endpoint(
    body: EndpointBody,
    caller: Caller,
    database: DatabaseDep,
    fernet: ConfigCipherDep,
    outbound: OutboundDep,
) -> EndpointWithSecret:
    """Register an endpoint for some event types. The answer holds its signing secret, this
    once."""
    with database.write() as (session, _):
        row, secret = service.create(session, caller, fernet, outbound, **body.model_dump())
        view = service.view(fernet, row)
    return EndpointWithSecret(**view, secret=secret)


@router.get("/endpoints", response_model=EndpointList)
def list_endpoints(caller: Caller, session: ReadSession, fernet: ConfigCipherDep) -> EndpointList:
    """The environment's endpoints, oldest first."""
    rows = service.listing(session, caller)
    return EndpointList(results=[EndpointView(**service.view(fernet, row)) for row in rows])


@router.get("/endpoints/{endpoint_id}", response_model=EndpointView)
def get_endpoint(
    endpoint_id: EndpointId,
    caller: Caller,
    session: ReadSession,
    fernet: ConfigCipherDep,
) -> EndpointView:
    return EndpointView(**service.view(fernet, service.get(session, caller, endpoint_id)))


@router.patch("/endpoints/{endpoint_id}", response_model=EndpointView)
def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointPatch,
    caller: Caller,
    database: DatabaseDep,
    fernet: ConfigCipherDep,
    outbound: OutboundDep,
) -> EndpointView:
    """Change the URL, event types, description or `enabled`; what is left out stays."""
    with database.write() as (session, _):
        row = service.update(session, caller, outbound, endpoint_id, **body.model_dump())
        view = service.view(fernet, row)
    return EndpointView(**view)


@router.delete("/endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: EndpointId, caller: Caller, database: DatabaseDep) -> Response:
    """Delete the endpoint and its deliveries log."""
    with database.write() as (session, _):
        service.delete(session, caller, endpoint_id)
    return Response(status_code=204)


@router.post("/endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(
    endpoint_id: EndpointId, caller: Caller, database: DatabaseDep, fernet: ConfigCipherDep
) -> EndpointWithSecret:
    """A new signing secret, shown this once. For 24 hours the previous one signs too (a
    second `v1,` signature in `webhook-signature`), so the receiver can switch over."""
    with database.write() as (session, _):
        row, secret = service.rotate_secret(session, caller, fernet, endpoint_id)
        view = service.view(fernet, row)
    return EndpointWithSecret(**view, secret=secret)


@router.get("/deliveries", response_model=DeliveryPage)
def list_deliveries(
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
    endpoint_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    status: DeliveryStatus | None = None,
    event_type: EventType | None = None,
) -> DeliveryPage:
    """The deliveries log, newest first: each event sent to each endpoint, its attempts and
    the last answer. Filter by endpoint, status or event type."""
    where = DeliveryFilter(endpoint_id, status, event_type)
    found = service.deliveries(session, caller, where, paging.after_id, paging.limit)
    return DeliveryPage(
        results=[DeliveryView(**service.delivery_view(row)) for row in found.rows],
        paging=Paging(**found.paging()),
    )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryView)
def get_delivery(
    delivery_id: DeliveryId,
    caller: Caller,
    session: ReadSession,
) -> DeliveryView:
    """One delivery, with the body it sends."""
    row = service.get_delivery(session, caller, delivery_id)
    return DeliveryView(**service.delivery_view(row, with_body=True))


@router.post("/deliveries/{delivery_id}/replay", status_code=202, response_model=DeliveryView)
def replay_delivery(delivery_id: DeliveryId, caller: Caller, database: DatabaseDep) -> DeliveryView:
    """Send the delivery's event to its endpoint again: a new delivery (`replay_of`), with
    the same body and `webhook-id`."""
    with database.write() as (session, outbox):
        row = service.replay(session, outbox, caller, delivery_id)
        view = service.delivery_view(row, with_body=True)
    return DeliveryView(**view)
