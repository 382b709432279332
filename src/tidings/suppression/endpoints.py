"""The suppression list API: `GET/POST /suppressions`, `DELETE
/suppressions/{channel}/{address}`, and CSV export and import. A secret API key's, like the
other management endpoints; the list is the key's environment's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.kit.api import from_row
from tidings.kit.pagination import PageOf50
from tidings.models import Suppression
from tidings.routing import ApiRoute
from tidings.suppression import service
from tidings.suppression.schemas import (
    AddedSuppressions,
    Channel,
    ImportResult,
    SuppressionIn,
    SuppressionPage,
    SuppressionsBody,
    SuppressionView,
)

router = APIRouter(tags=["suppressions"], route_class=ApiRoute)


def view(entry: Suppression) -> SuppressionView:
    return from_row(SuppressionView, entry, topic_id=entry.topic_id or None)


@router.get("/suppressions", response_model=SuppressionPage)
def list_suppressions(
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
    channel: Annotated[Channel | None, Query()] = None,
    address: Annotated[
        str | None, Query(max_length=500, description="Entries whose address starts so.")
    ] = None,
    topic_id: Annotated[
        str | None,
        Query(max_length=200, description='One topic\'s entries; "" for every-topic entries.'),
    ] = None,
) -> SuppressionPage:
    """The environment's suppression list, oldest entry first."""
    found = paging.page(
        service.page(
            session,
            caller,
            channel=channel,
            address_prefix=address,
            topic_id=topic_id,
            after_id=paging.after_id,
            limit=paging.rows_to_read,
        )
    )
    return SuppressionPage(items=[view(row) for row in found.rows], paging=found.paging())


@router.post("/suppressions", response_model=AddedSuppressions)
def add_suppressions(
    body: SuppressionIn | SuppressionsBody, caller: Caller, database: DatabaseDep
) -> AddedSuppressions:
    """Suppress one address (the body is one entry) or several (`{"suppressions": [...]}`,
    up to 1,000). An address already on the list keeps its entry."""
    items = body.suppressions if isinstance(body, SuppressionsBody) else [body]
    where = "suppressions.{}." if isinstance(body, SuppressionsBody) else ""
    entries = [
        service.new_entry(
            item.channel,
            item.address,
            topic_id=item.topic_id,
            reason=item.reason,
            detail=item.detail,
            field=f"{where.format(index)}address",
        )
        for index, item in enumerate(items)
    ]
    with database.write() as (session, _):
        added, stored = service.add(session, caller, entries, service.SOURCE_API)
        return AddedSuppressions(added=added, items=[view(row) for row in stored])


@router.delete("/suppressions/{channel}/{address:path}", status_code=204)
def delete_suppression(
    channel: Annotated[Channel, Path()],
    address: Annotated[str, Path(max_length=500)],
    caller: Caller,
    database: DatabaseDep,
    topic_id: Annotated[
        str | None,
        Query(
            max_length=200,
            description='Only this topic\'s entry ("" for the every-topic entry); without it, '
            "every entry of the address.",
        ),
    ] = None,
) -> Response:
    """Take an address off the list, so that it is sent to again. 404 when it was not on it."""
    with database.write() as (session, _):
        service.remove(session, caller, channel, address, topic_id)
    return Response(status_code=204)


@router.get(
    "/suppressions.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_suppressions(caller: Caller, database: DatabaseDep) -> StreamingResponse:
    """The whole list as CSV: channel, address, topic_id, reason, source, detail, created_at."""
    return StreamingResponse(
        service.export_csv(database, caller),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


async def csv_body(request: Request) -> bytes:
    """The request body, refused (413) once over the import's limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > service.MAX_IMPORT_BYTES:
        raise service.too_large()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > service.MAX_IMPORT_BYTES:
            raise service.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/suppressions/import",
    response_model=ImportResult,
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
def import_suppressions(
    data: Annotated[bytes, Depends(csv_body)], caller: Caller, database: DatabaseDep
) -> ImportResult:
    """Add the entries of a CSV file, sent as the body (`text/csv`, up to 2 MB and 20,000
    rows): a header naming at least `channel` and `address` (`topic_id`, `reason` and
    `detail` are read too; an export imports as it is). A bad row refuses the whole file: the
    400 names each bad row by its line number."""
    entries = service.parse_csv(data)
    with database.write() as (session, _):
        imported = service.import_entries(session, caller, entries, service.SOURCE_IMPORT)
    return ImportResult(rows=imported.rows, added=imported.added, existing=imported.existing)
