from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session

from tidings.automation import runs, service
from tidings.automation.repository import AutomationRepository, RunRepository
from tidings.automation.schemas import (
    AdHocInvokeBody,
    AutomationBody,
    AutomationList,
    AutomationResponse,
    InvokeBody,
    InvokeResponse,
    RunDetail,
    RunList,
    RunStepList,
    RunStepView,
    RunView,
    VersionList,
    VersionResponse,
)
from tidings.dependencies import Caller, ReadSession, RuntimeDep
from tidings.kit.pagination import decode_cursor, encode_cursor
from tidings.kit.time import isoformat
from tidings.models import Automation, AutomationRun, AutomationVersion

router = APIRouter(prefix="/automations", tags=["automations"])

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
        created_at=isoformat(version.created_at) or "",
    )


@router.get("", response_model=AutomationList)
def list_automations(
    caller: Caller,
    session: ReadSession,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> AutomationList:
    repository = AutomationRepository(session)
    rows = repository.page(caller, decode_cursor(cursor), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    results = []
    for row in rows:
        version = repository.version(row, row.current_version)
        assert version is not None
        results.append(_view(row, version))
    return AutomationList(
        paging={"cursor": encode_cursor(rows[-1].id) if more else None, "more": more},
        results=results,
    )


def run_views(session: Session, rows: Sequence[AutomationRun]) -> list[RunView]:
    """Views of runs, with their version numbers and event ids read in two queries."""
    repository = RunRepository(session)
    versions = repository.version_numbers({row.version_pk for row in rows if row.version_pk})
    events = repository.event_message_ids({row.event_pk for row in rows if row.event_pk})
    return [
        RunView(
            id=row.run_id,
            automation_id=row.automation_id,
            version=versions.get(row.version_pk) if row.version_pk else None,
            status=row.status,
            source=row.source,
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


def _step_views(session: Session, run: AutomationRun) -> list[RunStepView]:
    return [
        RunStepView(
            position=step.position,
            action=step.action,
            ref=step.ref,
            status=step.status,
            output=step.output,
            error=step.error,
            started_at=isoformat(step.started_at) or "",
            updated_at=isoformat(step.updated_at) or "",
            finished_at=isoformat(step.finished_at),
        )
        for step in RunRepository(session).steps(run.id)
    ]


def run_detail(session: Session, run: AutomationRun) -> RunDetail:
    hidden = ("depth", "profile_overrides")
    context = {key: value for key, value in run.context.items() if key not in hidden}
    return RunDetail(
        **run_views(session, [run])[0].model_dump(),
        context=context,
        steps=_step_views(session, run),
    )


@router.get("/runs", response_model=RunList, tags=["automation runs"])
def list_runs(
    caller: Caller,
    session: ReadSession,
    automation_id: Annotated[str | None, Query(description="Runs of this automation.")] = None,
    status: Annotated[
        str | None, Query(description="PROCESSING, WAITING, PROCESSED, CANCELED or ERROR.")
    ] = None,
    recipient: Annotated[str | None, Query(description="Runs for this user id.")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> RunList:
    """Automation runs, newest first."""
    rows = RunRepository(session).page(
        caller.environment_id,
        decode_cursor(cursor),
        limit + 1,
        automation_id=automation_id,
        status=status.upper() if status else None,
        recipient=recipient,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return RunList(
        paging={"cursor": encode_cursor(rows[-1].id) if more else None, "more": more},
        results=run_views(session, rows),
    )


@router.get("/runs/{run_id}", response_model=RunDetail, tags=["automation runs"])
def get_run(run_id: str, caller: Caller, session: ReadSession) -> RunDetail:
    """One run: its status, context, and each step with its status, output or error."""
    return run_detail(session, runs.get_run(session, caller, run_id))


@router.get("/runs/{run_id}/steps", response_model=RunStepList, tags=["automation runs"])
def get_run_steps(run_id: str, caller: Caller, session: ReadSession) -> RunStepList:
    return RunStepList(results=_step_views(session, runs.get_run(session, caller, run_id)))


@router.post("/runs/{run_id}/cancel", response_model=RunDetail, tags=["automation runs"])
def cancel_run(run_id: str, caller: Caller, runtime: RuntimeDep) -> RunDetail:
    """Cancel a PROCESSING or WAITING run (409 otherwise)."""
    with runtime.database.write() as session:
        run = runs.cancel_by_api(session, caller, run_id)
        return run_detail(session, run)


@router.post("/invoke", status_code=202, response_model=InvokeResponse, tags=["automation runs"])
def invoke_ad_hoc(body: AdHocInvokeBody, caller: Caller, runtime: RuntimeDep) -> InvokeResponse:
    """Run steps given inline (Courier's ad hoc invoke). Answers once the run is committed."""
    with runtime.database.write() as session:
        run = runs.invoke_ad_hoc(session, caller, body.model_dump(exclude_none=True))
        run_pk, run_id = run.id, run.run_id
    runtime.jobs.advance_run(run_pk)
    return InvokeResponse(runId=run_id)


@router.post(
    "/{automation_id}/invoke",
    status_code=202,
    response_model=InvokeResponse,
    tags=["automation runs"],
)
def invoke(
    automation_id: str, caller: Caller, runtime: RuntimeDep, body: InvokeBody | None = None
) -> InvokeResponse:
    """Start a run of the automation's current version, enabled or not."""
    payload = body.model_dump(exclude_none=True) if body is not None else {}
    with runtime.database.write() as session:
        run = runs.invoke(session, caller, automation_id, payload)
        run_pk, run_id = run.id, run.run_id
    runtime.jobs.advance_run(run_pk)
    return InvokeResponse(runId=run_id)


@router.put("/{automation_id}", response_model=AutomationResponse, openapi_extra=_BODY_SCHEMA)
def put_automation(
    automation_id: str,
    caller: Caller,
    runtime: RuntimeDep,
    response: Response,
    body: Annotated[Any, Body(include_in_schema=False)],
) -> AutomationResponse:
    """Create (201) or replace (200) a definition. A changed definition gets a new version."""
    with runtime.database.write() as session:
        automation, version, outcome = service.save(session, caller, automation_id, body)
        view = _view(automation, version)
    response.status_code = 201 if outcome == "created" else 200
    return view


@router.get("/{automation_id}", response_model=AutomationResponse)
def get_automation(automation_id: str, caller: Caller, session: ReadSession) -> AutomationResponse:
    return _view(*service.get(session, caller, automation_id))


@router.delete("/{automation_id}", status_code=204)
def delete_automation(automation_id: str, caller: Caller, runtime: RuntimeDep) -> Response:
    with runtime.database.write() as session:
        service.delete(session, caller, automation_id)
    return Response(status_code=204)


@router.get("/{automation_id}/versions", response_model=VersionList)
def list_versions(
    automation_id: str,
    caller: Caller,
    session: ReadSession,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> VersionList:
    automation, _ = service.get(session, caller, automation_id)
    rows = AutomationRepository(session).version_page(automation, decode_cursor(cursor), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return VersionList(
        paging={"cursor": encode_cursor(rows[-1].version) if more else None, "more": more},
        results=[_version_view(automation_id, row) for row in rows],
    )


@router.get("/{automation_id}/versions/{version}", response_model=VersionResponse)
def get_version(
    automation_id: str, version: int, caller: Caller, session: ReadSession
) -> VersionResponse:
    return _version_view(
        automation_id, service.get_version(session, caller, automation_id, version)
    )
