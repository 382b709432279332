"""`/broadcasts`: create, list, read, pause, resume, cancel."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from tidings.broadcast import service
from tidings.broadcast.schemas import BroadcastBody, BroadcastCounts, BroadcastPage, BroadcastView
from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.kit.api import from_row
from tidings.kit.pagination import PageOf20
from tidings.kit.time import isoformat
from tidings.models import Broadcast
from tidings.routing import ApiRoute

router = APIRouter(tags=["broadcasts"], route_class=ApiRoute)


def view(session: Session, broadcast: Broadcast) -> BroadcastView:
    return from_row(
        BroadcastView,
        broadcast,
        id=broadcast.broadcast_id,
        to=broadcast.target,
        counts=BroadcastCounts(**service.counts(session, broadcast)),
        next_chunk_at=(
            isoformat(broadcast.next_chunk_at)
            if broadcast.status in ("scheduled", "running")
            else None
        ),
    )


@router.post("/broadcasts", status_code=202, response_model=BroadcastView)
def create_broadcast(body: BroadcastBody, caller: Caller, database: DatabaseDep) -> JSONResponse:
    """Send a template to every member of an audience, a list or a tenant, now or at
    `send_at`. Answers 202 with the broadcast once it is stored; its messages are made
    chunk by chunk at the environment's send rate (`TIDINGS_BROADCAST_RATE`). A repeat of
    the same body with the same `broadcast_id` answers 200 with the broadcast made first."""
    with database.write() as (session, outbox):
        broadcast, created = service.create(session, outbox, caller, body)
        answer = view(session, broadcast)
    return JSONResponse(answer.model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/broadcasts", response_model=BroadcastPage)
def list_broadcasts(caller: Caller, session: ReadSession, paging: PageOf20) -> BroadcastPage:
    """The environment's broadcasts, in creation order."""
    found = paging.page(service.page(session, caller, paging.after_id, paging.rows_to_read))
    return BroadcastPage(items=[view(session, row) for row in found.rows], paging=found.paging())


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastView)
def get_broadcast(broadcast_id: str, caller: Caller, session: ReadSession) -> BroadcastView:
    """The broadcast, its status, its counts (from the messages it made) and its cursor."""
    return view(session, service.get(session, caller, broadcast_id))


@router.post("/broadcasts/{broadcast_id}/pause", response_model=BroadcastView)
def pause_broadcast(broadcast_id: str, caller: Caller, database: DatabaseDep) -> BroadcastView:
    """Stop releasing chunks; the messages already made are sent."""
    with database.write() as (session, _):
        return view(session, service.pause(session, caller, broadcast_id))


@router.post("/broadcasts/{broadcast_id}/resume", response_model=BroadcastView)
def resume_broadcast(broadcast_id: str, caller: Caller, database: DatabaseDep) -> BroadcastView:
    """Release chunks again, from where the broadcast stopped."""
    with database.write() as (session, outbox):
        return view(session, service.resume(session, outbox, caller, broadcast_id))


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=BroadcastView)
def cancel_broadcast(broadcast_id: str, caller: Caller, database: DatabaseDep) -> BroadcastView:
    """Stop for good: no more recipients are reached, and the messages made but not sent
    yet (waiting in the queue or for a send window) are canceled."""
    with database.write() as (session, _):
        service.cancel(session, caller, broadcast_id)
    service.cancel_unsent(database, caller, broadcast_id)
    with database.read() as session:
        return view(session, service.get(session, caller, broadcast_id))
