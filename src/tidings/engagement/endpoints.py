"""The open pixel and tracked links that mail clients fetch, and the environment's default
tracking settings.

`/t/o/{token}` and `/t/c/{token}` take no API key: the signed token is the credential, and
a token that does not verify is a 404. Each answer is cheap and bounded: the token is
checked without the database, the hit is one small write transaction, and a failure to
record it is logged, never answered: the recipient still gets the pixel or the link.
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from tidings.dependencies import (
    Caller,
    DatabaseDep,
    EngagementKeyDep,
    ReadSession,
    SettingsDep,
    client_address,
)
from tidings.engagement import service
from tidings.engagement.links import verify_click, verify_open
from tidings.engagement.schemas import EnvironmentTracking
from tidings.errors import NotFound
from tidings.routing import ApiRoute

logger = logging.getLogger(__name__)

router = APIRouter(route_class=ApiRoute)

# Any token that does not verify is a 404, one too long included (`verify_fields` refuses
# one over MAX_SIGNED_TOKEN_LENGTH before looking at it).
Token = Annotated[str, Path(description="The signed token of the pixel or link.")]

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {
    # Each open is a request: no cache, proxy or browser, may answer it instead.
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    # The token is in the URL: keep it out of Referer headers and search indexes.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
_INVALID_LINK = NotFound(
    "This link is not one Tidings made, or it was changed or cut short.",
    code="invalid_tracking_link",
    field="token",
)


def _record(
    request: Request, database: DatabaseDep, seconds: float, message_id: str, url: str | None
) -> None:
    hit = service.Hit(
        message_id=message_id,
        user_agent=request.headers.get("user-agent", ""),
        client_ip=client_address(request.scope),
        url=url,
    )
    try:
        with database.write() as (session, outbox):
            service.record_hit(session, outbox, hit, seconds)
    except Exception:
        # The recipient still gets the pixel or the link.
        logger.exception("could not record a tracked %s", "click" if url else "open")


@router.get(
    "/t/o/{token}",
    tags=["tracking"],
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF."}},
)
def open_pixel(
    token: Token,
    request: Request,
    key: EngagementKeyDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """The open pixel of a tracked email: records an open, answers a 1x1 GIF."""
    message_id = verify_open(key, token)
    if message_id is None:
        raise _INVALID_LINK
    _record(request, database, settings.machine_engagement_seconds, message_id, None)
    return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)


@router.get(
    "/t/c/{token}",
    tags=["tracking"],
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the link's URL."}},
)
def tracked_link(
    token: Token,
    request: Request,
    key: EngagementKeyDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """A tracked link: records a click, redirects to the URL Tidings signed into it."""
    verified = verify_click(key, token)
    if verified is None:
        raise _INVALID_LINK
    message_id, url = verified
    _record(request, database, settings.machine_engagement_seconds, message_id, url)
    return RedirectResponse(url, status_code=302, headers=_NO_CACHE)


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
