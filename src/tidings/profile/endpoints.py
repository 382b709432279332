from __future__ import annotations

from fastapi import APIRouter

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.profile import service
from tidings.profile.schemas import PatchBody, ProfileBody, ProfileResponse, StatusResponse
from tidings.routing import ApiRoute

router = APIRouter(prefix="/profiles", tags=["profiles"], route_class=ApiRoute)


@router.get("/{user_id}", response_model=ProfileResponse)
def get_profile(user_id: str, caller: Caller, session: ReadSession) -> ProfileResponse:
    return ProfileResponse(profile=service.get_profile(session, caller, user_id))


@router.post("/{user_id}", response_model=StatusResponse)
def merge_profile(
    user_id: str, body: ProfileBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Merge keys into the profile, creating it when missing. Keys you omit stay as they are."""
    with database.write() as (session, _):
        service.merge_profile(session, caller, user_id, body.profile)
    return StatusResponse()


@router.put("/{user_id}", response_model=StatusResponse)
def replace_profile(
    user_id: str, body: ProfileBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Replace the whole profile: keys missing from the body are removed."""
    with database.write() as (session, _):
        service.replace_profile(session, caller, user_id, body.profile)
    return StatusResponse()


@router.patch("/{user_id}", response_model=StatusResponse)
def patch_profile(
    user_id: str, body: PatchBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Apply `{"patch": [JSON Patch operations]}`. All operations apply, or none."""
    operations = [operation.model_dump() for operation in body.patch]
    with database.write() as (session, _):
        service.patch_profile(session, caller, user_id, operations)
    return StatusResponse()
