"""`DELETE /profiles/{user_id}`: the user erased as a Segment `delete` erases them (the rest
of the profiles API is profile/endpoints.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tidings.dependencies import Caller, DatabaseDep
from tidings.identity import service
from tidings.routing import ApiRoute

router = APIRouter(prefix="/profiles", tags=["profiles"], route_class=ApiRoute)


@router.delete("/{user_id}", status_code=204)
def delete_profile(user_id: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        service.delete_profile(session, caller, user_id)
    return Response(status_code=204)
