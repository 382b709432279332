from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from tidings.automation import service
from tidings.automation.repository import AutomationRepository
from tidings.automation.schemas import (
    AutomationBody,
    AutomationList,
    AutomationResponse,
    VersionList,
    VersionResponse,
)
from tidings.dependencies import Caller, ReadSession, RuntimeDep
from tidings.kit.pagination import decode_cursor, encode_cursor
from tidings.kit.time import isoformat
from tidings.models import Automation, AutomationVersion

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
