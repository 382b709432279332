"""The replay API: `POST /automations/{id}/replay` and `/automations/{id}/replays/...`
(docs/automations.md, "Replay")."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from tidings.dependencies import Caller, DatabaseDep, OutboundDep, ReadSession
from tidings.kit.pagination import PageOf50
from tidings.models import AutomationReplay
from tidings.replay import service
from tidings.replay.repository import ReplayRepository
from tidings.replay.schemas import ReplayBody, ReplayEventList, ReplayList, ReplayView
from tidings.routing import ApiRoute

router = APIRouter(prefix="/automations", tags=["automations"], route_class=ApiRoute)

Change = Literal["added", "removed", "changed", "same", "none"]


def _view(replay: AutomationReplay) -> ReplayView:
    return ReplayView.model_validate(service.view(replay))


@router.post("/{automation_id}/replay", status_code=202, response_model=ReplayView)
def start_replay(
    automation_id: str,
    body: ReplayBody,
    caller: Caller,
    database: DatabaseDep,
    outbound: OutboundDep,
    response: Response,
) -> ReplayView:
    """Replay the stored Segment events received in [from, to) through a version or a draft
    definition, in a sandbox on a process of its own (nothing is sent or written), and diff
    the messages it would send against what the automation did. Answers 202 with the replay;
    read it at its `Location` until its status is `done`."""
    request = service.ReplayRequest(
        automation_id=automation_id,
        start=body.from_,
        end=body.to,
        **body.model_dump(exclude={"from_", "to"}),
    )
    with database.write() as (session, outbox):
        replay = service.start(session, outbox, caller, request, outbound)
        view = _view(replay)
    response.headers["Location"] = f"/automations/{automation_id}/replays/{view.replay_id}"
    return view


@router.get("/{automation_id}/replays", response_model=ReplayList)
def list_replays(
    automation_id: str, caller: Caller, session: ReadSession, paging: PageOf50
) -> ReplayList:
    """The automation's replays, newest first (each is kept seven days)."""
    rows = ReplayRepository(session).newest_of(
        caller.environment_id, automation_id, paging.after_id, paging.rows_to_read
    )
    found = paging.page(rows)
    return ReplayList(results=[_view(row) for row in found.rows], paging=found.paging())


@router.get("/{automation_id}/replays/{replay_id}", response_model=ReplayView)
def get_replay(
    automation_id: str, replay_id: str, caller: Caller, session: ReadSession
) -> ReplayView:
    """A replay: its status and progress, and its diff once it is done."""
    return _view(service.get(session, caller, automation_id, replay_id))


@router.get("/{automation_id}/replays/{replay_id}/events", response_model=ReplayEventList)
def replay_events(
    automation_id: str,
    replay_id: str,
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
    change: Annotated[
        list[Change] | None, Query(description="Only events with these kinds of change.")
    ] = None,
) -> ReplayEventList:
    """A done replay's events in the order they were replayed, each with the runs and
    messages it would give (`messages`) and the messages it gave (`before`)."""
    replay = service.get(session, caller, automation_id, replay_id)
    rows = ReplayRepository(session).events_page(
        replay.id, change, paging.after_id, paging.rows_to_read
    )
    found = paging.page(rows, key=lambda row: row.position)
    return ReplayEventList.model_validate(
        {"results": [service.event_view(row) for row in found.rows], "paging": found.paging()}
    )


@router.delete("/{automation_id}/replays/{replay_id}", status_code=204)
def cancel_replay(
    automation_id: str, replay_id: str, caller: Caller, database: DatabaseDep
) -> Response:
    """Cancel a queued or running replay (it stays, `canceled`), or delete a finished one
    and its results."""
    with database.write() as (session, _):
        service.cancel(session, caller, automation_id, replay_id)
    return Response(status_code=204)
