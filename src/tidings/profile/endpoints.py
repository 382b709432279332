from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter
from sqlalchemy.orm import Session

from tidings.db import Database
from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.profile import service
from tidings.profile.schemas import PatchBody, ProfileBody, ProfileResponse, StatusResponse
from tidings.routing import ApiRoute
from tidings.workspace.service import Scope

router = APIRouter(prefix="/profiles", tags=["profiles"], route_class=ApiRoute)


@router.get("/{user_id}", response_model=ProfileResponse)
def get_profile(user_id: str, caller: Caller, session: ReadSession) -> ProfileResponse:
    return ProfileResponse(profile=service.get_profile(session, caller, user_id))


Value = TypeVar("Value")


def _change(
    database: Database,
    caller: Scope,
    user_id: str,
    change: Callable[[Session, Scope, str, Value], object],
    value: Value,
) -> StatusResponse:
    """Apply one of the service's changes to the profile in a unit of work of its own."""
    with database.write() as (session, _):
        change(session, caller, user_id, value)
    return StatusResponse()


@router.post("/{user_id}", response_model=StatusResponse)
def merge_profile(
    user_id: str, body: ProfileBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Merge keys into the profile, creating it when missing. Keys you omit stay as they are."""
    return _change(database, caller, user_id, service.merge_profile, body.profile)


@router.put("/{user_id}", response_model=StatusResponse)
def replace_profile(
    user_id: str, body: ProfileBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Replace the whole profile: keys missing from the body are removed."""
    return _change(database, caller, user_id, service.replace_profile, body.profile)


@router.patch("/{user_id}", response_model=StatusResponse)
def patch_profile(
    user_id: str, body: PatchBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Apply `{"patch": [JSON Patch operations]}`. All operations apply, or none."""
    operations = [operation.model_dump() for operation in body.patch]
    return _change(database, caller, user_id, service.patch_profile, operations)
