"""`GET /metrics`: the Prometheus text format, for a secret API key of any environment.

The counters and the backlog are the whole process's (every environment's): the key only
says the scraper may read them. `TIDINGS_METRICS_PORT` serves the same text without a key
on a port of its own (server.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tidings.dependencies import Caller, DatabaseDep
from tidings.routing import ApiRoute
from tidings.scrape.service import CONTENT_TYPE, exposition

router = APIRouter(tags=["metrics"], route_class=ApiRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(caller: Caller, database: DatabaseDep) -> Response:
    """This process's counters and the queue backlog, in Prometheus' text format
    (docs/observability.md)."""
    return Response(exposition(database), media_type=CONTENT_TYPE)
