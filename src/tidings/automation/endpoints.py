from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Header, Query, Response
from sqlalchemy.orm import Session

from tidings.automation import runs, service
from tidings.automation.repository import AutomationRepository, RunRepository
from tidings.automation.schemas import (
    AdHocInvokeBody,
    AutomationBody,
    AutomationList,
    AutomationResponse,
    AutomationTemplate,
    InvokeBody,
    InvokeResponse,
    RunDetail,
    RunList,
    RunRetry,
    RunStepList,
    RunStepView,
    RunView,
    VersionList,
    VersionResponse,
)
from tidings.db import Database, Outbox
from tidings.dependencies import Caller, DatabaseDep, OutboundDep, ReadSession, SettingsDep
from tidings.errors import BadRequest
from tidings.kit.api import creates_or_replaces
from tidings.kit.pagination import PageOf50, decode_cursor, page
from tidings.kit.time import isoformat, parse_timestamp
from tidings.message.idempotency import Answer, IdempotentRequest, answer_once
from tidings.models import Automation, AutomationRun, AutomationVersion
from tidings.routing import ApiRoute
from tidings.workspace.service import Scope

router = APIRouter(prefix="/automations", tags=["automations"], route_class=ApiRoute)


_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": AutomationBody.model_json_schema()}},
    }
}


def _view(automation: Automation, version: AutomationVersion) -> AutomationResponse:
    definition = version.definition
    return AutomationResponse(
        id=automation.automation_id,
        name=definition["name"],
        enabled=definition["enabled"],
        version=version.version,
        triggers=definition["triggers"],
        cancelation_token=definition["cancelation_token"],
        steps=definition["steps"],
        created_at=isoformat(automation.created_at) or "",
        updated_at=isoformat(automation.updated_at) or "",
    )


def _version_view(automation_id: str, version: AutomationVersion) -> VersionResponse:
    definition = version.definition
    return VersionResponse(
        id=automation_id,
        version=version.version,
        name=definition["name"],
        enabled=definition["enabled"],
        triggers=definition["triggers"],
        cancelation_token=definition["cancelation_token"],
        steps=definition["steps"],
        saved_by=version.saved_by,
        restored_from=version.restored_from,
        created_at=isoformat(version.created_at) or "",
    )


@router.get("", response_model=AutomationList)
def list_automations(
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
    version: Annotated[
        Literal["published", "draft"],
        Query(description="Courier's filter. Tidings has no drafts: `draft` lists none."),
    ] = "published",
) -> AutomationList:
    """Saved automations, oldest first, in Courier's shape (`templates`, `cursor`) and
    Tidings' (`results` with steps and triggers, `paging`)."""
    repository = AutomationRepository(session)
    drafts: list[Automation] = []
    found = paging.page(
        repository.page(caller, paging.after_id, paging.rows_to_read)
        if version == "published"
        else drafts
    )
    results = []
    for row in found.rows:
        current = repository.version(row, row.current_version)
        assert current is not None
        results.append(_view(row, current))
    return AutomationList(
        templates=[
            AutomationTemplate(
                id=view.id,
                name=view.name,
                version="published",
                created_at=view.created_at,
                updated_at=view.updated_at,
            )
            for view in results
        ],
        cursor=found.cursor,
        paging=found.paging(),
        results=results,
    )


def run_views(session: Session, rows: Sequence[AutomationRun]) -> list[RunView]:
    """Views of runs, with their version numbers and event ids read in two queries."""
    repository = RunRepository(session)
    versions = repository.version_numbers({row.version_pk for row in rows if row.version_pk})
    events = repository.event_message_ids({row.event_pk for row in rows if row.event_pk})
    return [
        RunView(
            run_id=row.run_id,
            template_id=row.automation_id,
            version=versions.get(row.version_pk) if row.version_pk else None,
            status=row.status,
            source=[row.source],
            recipient=row.recipient,
            cancelation_token=row.cancelation_token,
            event=events.get(row.event_pk) if row.event_pk else None,
            parent_run_id=row.parent_run_id,
            step_index=row.step_index,
            step_count=row.step_count,
            wake_at=isoformat(row.wake_at),
            error=row.error,
            created_at=isoformat(row.created_at) or "",
            updated_at=isoformat(row.updated_at) or "",
            finished_at=isoformat(row.finished_at),
        )
        for row in rows
    ]


def step_views(session: Session, run: AutomationRun) -> list[RunStepView]:
    views = []
    for step in RunRepository(session).steps(run.id):
        output = step.output or {}
        message_id = output.get("messageId") or output.get("requestId")
        views.append(
            RunStepView(
                step_id=f"{run.run_id}/{step.position}",
                action=step.action,
                status=step.status,
                created_at=isoformat(step.started_at) or "",
                updated_at=isoformat(step.updated_at) or "",
                finished_at=isoformat(step.finished_at),
                message_id=message_id if isinstance(message_id, str) else None,
                position=step.position,
                ref=step.ref,
                output=step.output,
                error=step.error,
            )
        )
    return views


def run_detail(session: Session, run: AutomationRun) -> RunDetail:
    hidden = ("depth", "profile_overrides", "retries")
    context = {key: value for key, value in run.context.items() if key not in hidden}
    return RunDetail(
        **run_views(session, [run])[0].model_dump(),
        context=context,
        steps=step_views(session, run),
        retries=[RunRetry(**retry) for retry in run.context.get("retries", [])],
    )


def _csv(value: str | None) -> list[str] | None:
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    return items or None


def _date(value: str | None, field: str, end: bool) -> datetime | None:
    if value is None:
        return None
    if len(value) == 10:
        value += "T23:59:59.999999Z" if end else "T00:00:00Z"
    parsed = parse_timestamp(value)
    if parsed is None:
        raise BadRequest(
            f"{field}: {value!r} is not an ISO 8601 date or timestamp, e.g. 2026-08-18 or "
            "2026-08-18T20:06:36Z.",
            code="invalid_date",
            field=field,
        )
    return parsed


def _limit(value: str | None) -> int:
    """Courier's rule: 1 to 50, default 20, out-of-range clamped, non-numbers ignored."""
    try:
        return max(1, min(50, int(value))) if value is not None else 20
    except ValueError:
        return 20


@router.get("/runs", response_model=RunList, tags=["automation runs"])
def list_runs(
    caller: Caller,
    session: ReadSession,
    template_id: Annotated[str | None, Query(description="Comma-separated automation ids.")] = None,
    status: Annotated[
        str | None,
        Query(
            description="Comma-separated: PROCESSING, WAITING, WAITING_FOR_EVENT, PROCESSED, "
            "CANCELED, ERROR, THROTTLED, BATCHED."
        ),
    ] = None,
    recipient: Annotated[str | None, Query(description="Runs for this user id.")] = None,
    start_date: Annotated[
        str | None, Query(description="Inclusive lower bound on created_at (ISO 8601).")
    ] = None,
    end_date: Annotated[
        str | None, Query(description="Inclusive upper bound on created_at (ISO 8601).")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[str | None, Query(description="1 to 50; default 20.")] = None,
) -> RunList:
    """Automation runs, newest first (Courier's list shape: `runs`, `next_cursor`)."""
    size = _limit(limit)
    statuses = _csv(status)
    rows = RunRepository(session).page(
        caller.environment_id,
        decode_cursor(cursor),
        size + 1,
        automation_ids=_csv(template_id),
        statuses=[item.upper() for item in statuses] if statuses else None,
        recipient=recipient,
        created_from=_date(start_date, "start_date", end=False),
        created_to=_date(end_date, "end_date", end=True),
    )
    found = page(rows, size)
    return RunList(runs=run_views(session, found.rows), next_cursor=found.cursor)


@router.get("/runs/{run_id}", response_model=RunDetail, tags=["automation runs"])
def get_run(run_id: str, caller: Caller, session: ReadSession) -> RunDetail:
    """One run: its status, context, and each step with its status, output or error."""
    return run_detail(session, runs.get_run(session, caller, run_id))


@router.get("/runs/{run_id}/steps", response_model=RunStepList, tags=["automation runs"])
def get_run_steps(run_id: str, caller: Caller, session: ReadSession) -> RunStepList:
    """Every step the run has reached (Courier's `steps` shape)."""
    return RunStepList(steps=step_views(session, runs.get_run(session, caller, run_id)))


@router.post("/runs/{run_id}/cancel", response_model=RunDetail, tags=["automation runs"])
def cancel_run(run_id: str, caller: Caller, database: DatabaseDep) -> RunDetail:
    """Cancel a PROCESSING, WAITING or WAITING_FOR_EVENT run (409 otherwise)."""
    with database.write() as (session, _):
        run = runs.cancel_by_api(session, caller, run_id)
        return run_detail(session, run)


@router.post(
    "/runs/{run_id}/retry", status_code=202, response_model=RunDetail, tags=["automation runs"]
)
def retry_run(run_id: str, caller: Caller, database: DatabaseDep) -> RunDetail:
    """Run a failed (ERROR) run again from the step that failed (409 otherwise). Answers 202
    with the run PROCESSING once the retry is committed; the step runs in a job, and the
    retry is listed in the run's `retries`."""
    with database.write() as (session, outbox):
        run = runs.retry_by_api(session, caller, run_id, f"API key {caller.key_id}")
        outbox.add_run(run.id)
        return run_detail(session, run)


def _invoke(
    database: Database,
    ttl_seconds: float,
    caller: Scope,
    idempotency_key: str | None,
    body: dict[str, Any],
    start: Callable[[Session], AutomationRun],
) -> Response:
    """Start a run and answer 202 `{runId}`; an Idempotency-Key replays the first answer."""
    idempotent = IdempotentRequest.of(caller.environment_id, idempotency_key, body, ttl_seconds)

    def start_run(session: Session, outbox: Outbox) -> Answer:
        run = start(session)
        outbox.add_run(run.id)
        return 202, {"runId": run.run_id}

    status_code, answer = answer_once(database, idempotent, start_run)
    return _json(answer, status_code)


def _json(body: dict[str, Any], status_code: int) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Repeats replay the first answer for 24 h."),
]


@router.post("/invoke", status_code=202, response_model=InvokeResponse, tags=["automation runs"])
def invoke_ad_hoc(
    body: AdHocInvokeBody,
    caller: Caller,
    database: DatabaseDep,
    settings: SettingsDep,
    outbound: OutboundDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Run steps given inline (Courier's ad hoc invoke). Answers once the run is committed."""
    payload = body.model_dump(exclude_none=True)
    return _invoke(
        database,
        settings.idempotency_ttl_seconds,
        caller,
        idempotency_key,
        {"ad_hoc": payload},
        lambda session: runs.invoke_ad_hoc(session, caller, payload, outbound=outbound),
    )


@router.post(
    "/{automation_id}/invoke",
    status_code=202,
    response_model=InvokeResponse,
    tags=["automation runs"],
)
def invoke(
    automation_id: str,
    caller: Caller,
    database: DatabaseDep,
    settings: SettingsDep,
    body: InvokeBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Start a run of the automation's current version, enabled or not."""
    payload = body.model_dump(exclude_none=True) if body is not None else {}
    return _invoke(
        database,
        settings.idempotency_ttl_seconds,
        caller,
        idempotency_key,
        {"automation": automation_id, **payload},
        lambda session: runs.invoke(session, caller, automation_id, payload),
    )


@router.put(
    "/{automation_id}", **creates_or_replaces(AutomationResponse), openapi_extra=_BODY_SCHEMA
)
def put_automation(
    automation_id: str,
    caller: Caller,
    database: DatabaseDep,
    outbound: OutboundDep,
    response: Response,
    body: Annotated[Any, Body(include_in_schema=False)],
) -> AutomationResponse:
    """Create (201) or replace (200) a definition. A changed definition gets a new version."""
    with database.write() as (session, _):
        automation, version, outcome = service.save(
            session, caller, automation_id, body, outbound=outbound
        )
        view = _view(automation, version)
    response.status_code = 201 if outcome == "created" else 200
    return view


@router.get("/{automation_id}", response_model=AutomationResponse)
def get_automation(automation_id: str, caller: Caller, session: ReadSession) -> AutomationResponse:
    return _view(*service.get(session, caller, automation_id))


@router.delete("/{automation_id}", status_code=204)
def delete_automation(automation_id: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        service.delete(session, caller, automation_id)
    return Response(status_code=204)


@router.get("/{automation_id}/versions", response_model=VersionList)
def list_versions(
    automation_id: str, caller: Caller, session: ReadSession, paging: PageOf50
) -> VersionList:
    automation, _ = service.get(session, caller, automation_id)
    rows = AutomationRepository(session).version_page(
        automation, paging.after_id, paging.rows_to_read
    )
    found = paging.page(rows, key=attrgetter("version"))
    return VersionList(
        paging=found.paging(),
        results=[_version_view(automation_id, row) for row in found.rows],
    )


@router.get("/{automation_id}/versions/{version}", response_model=VersionResponse)
def get_version(
    automation_id: str, version: int, caller: Caller, session: ReadSession
) -> VersionResponse:
    return _version_view(
        automation_id, service.get_version(session, caller, automation_id, version)
    )


@router.post("/{automation_id}/versions/{version}/restore", response_model=VersionResponse)
def restore_version(
    automation_id: str, version: int, caller: Caller, database: DatabaseDep, outbound: OutboundDep
) -> VersionResponse:
    """Save that version's definition as a new version (history is kept), checked as
    `PUT /automations/{id}` checks it. Answers the version that is current now: the new one,
    or the current one when it already has that definition."""
    with database.write() as (session, _):
        _, saved, _ = service.restore(session, caller, automation_id, version, outbound=outbound)
        return _version_view(automation_id, saved)
