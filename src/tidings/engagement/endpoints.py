"""The environment's default open and click tracking settings (the open pixel and tracked
links that mail clients fetch are callback/endpoints.py's `hits_router`)."""

from __future__ import annotations

from fastapi import APIRouter

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.engagement import service
from tidings.engagement.schemas import EnvironmentTracking
from tidings.routing import ApiRoute

router = APIRouter(route_class=ApiRoute)


@router.get("/settings/tracking", tags=["tracking"], response_model=EnvironmentTracking)
def get_tracking_settings(caller: Caller, session: ReadSession) -> EnvironmentTracking:
    """The environment's default open and click tracking (templates may set their own)."""
    return service.environment_tracking(session, caller.environment_id)


@router.put("/settings/tracking", tags=["tracking"], response_model=EnvironmentTracking)
def put_tracking_settings(
    body: EnvironmentTracking, caller: Caller, database: DatabaseDep
) -> EnvironmentTracking:
    """Set the environment's default open and click tracking, for the templates that do not
    set their own. Both are off until turned on."""
    with database.write() as (session, _):
        return service.set_environment_tracking(session, caller.environment_id, body)
