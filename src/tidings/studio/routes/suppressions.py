"""Suppressions: the environment's suppression list, filtered by channel, address and topic;
add and remove an address; export and import it as CSV. Each through the suppression service
that /suppressions calls."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from tidings.errors import AppError, BadRequest, PayloadTooLarge
from tidings.provider.base import CHANNELS
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, see_other
from tidings.studio.listing import ListQuery, empty
from tidings.suppression import service

router = APIRouter()

PAGE_SIZE = 100
PATH = f"{PREFIX}/suppressions"
FLASHES = {"added": "Added to the list.", "removed": "Taken off the list."}
# A multipart upload carries the file and a few small fields: what it may add to the file.
MULTIPART_OVERHEAD = 64 * 1024


def _page(
    page: Page,
    *,
    new: dict[str, str] | None = None,
    error: AppError | None = None,
    import_error: AppError | None = None,
    flash: str | None = None,
    status_code: int | None = None,
) -> Response:
    query = ListQuery(page.request, PATH, PAGE_SIZE)
    channel = query.choice("channel", CHANNELS, "Channel")
    address = query.text("address")
    topic_id = query.text("topic_id")
    listing = empty()
    if not query.errors:
        with page.database.read() as session:
            listing = query.in_order(
                lambda after_id, limit: service.page(
                    session,
                    page.scope,
                    channel=channel,
                    address_prefix=address,
                    topic_id=topic_id,
                    after_id=after_id,
                    limit=limit,
                )
            )
    response = query.render(
        "suppressions.html",
        listing,
        section="suppressions",
        channels=CHANNELS,
        new=new or {"channel": "email", "address": "", "topic_id": "", "detail": ""},
        refused=error or import_error,
        error=error,
        import_error=import_error,
        flash=flash,
    )
    if status_code is not None:
        response.status_code = status_code
    return response


@router.get("/suppressions")
def list_suppressions(page: Page) -> Response:
    return _page(page, flash=page.flash(FLASHES))


@router.post("/suppressions")
def add_suppression(page: Page, form: CheckedForm) -> Response:
    """As POST /suppressions with one entry (reason MANUAL, source studio)."""
    new = {
        name: form_text(form, name).strip() for name in ("channel", "address", "topic_id", "detail")
    }
    try:
        entry = service.new_entry(
            new["channel"],
            new["address"],
            topic_id=new["topic_id"] or None,
            detail=new["detail"] or None,
        )
        with page.database.write() as (session, _):
            service.add(session, page.scope, [entry], service.SOURCE_STUDIO)
    except AppError as exc:
        return _page(page, new=new, error=exc)
    return see_other(PATH, "added")


@router.post("/suppressions/remove")
def remove_suppression(page: Page, form: CheckedForm) -> Response:
    """As DELETE /suppressions/{channel}/{address}?topic_id=…: the one entry shown."""
    try:
        with page.database.write() as (session, _):
            service.remove(
                session,
                page.scope,
                form_text(form, "channel"),
                form_text(form, "address"),
                form_text(form, "topic_id"),
            )
    except AppError as exc:
        return _page(page, error=exc)
    return see_other(PATH, "removed")


@router.get("/suppressions.csv")
def export_suppressions(page: Page) -> StreamingResponse:
    """As GET /suppressions.csv."""
    return StreamingResponse(
        service.export_csv(page.database, page.scope),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


def refuse_large_upload(request: Request) -> None:
    """Before the form is read: an upload larger than the import's limit is refused from its
    Content-Length (browsers send one with every form)."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > service.MAX_IMPORT_BYTES + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"The file is over {service.MAX_IMPORT_BYTES // (1024 * 1024)} MB. Split it and "
            "import the parts one after the other.",
            code="csv_too_large",
            field="file",
        )


@router.post("/suppressions/import", dependencies=[Depends(refuse_large_upload)])
def import_suppressions(page: Page, form: CheckedForm) -> Response:
    """As POST /suppressions/import, with the file chosen in the form."""
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadRequest("Choose a CSV file to import.", code="csv_missing", field="file")
        entries = service.parse_csv(upload.file.read(service.MAX_IMPORT_BYTES + 1))
        with page.database.write() as (session, _):
            imported = service.import_entries(session, page.scope, entries, service.SOURCE_IMPORT)
    except AppError as exc:
        return _page(page, import_error=exc)
    flash = (
        f"Imported {imported.rows} {'entry' if imported.rows == 1 else 'entries'}: "
        f"{imported.added} new, {imported.existing} already on the list."
    )
    return _page(page, flash=flash)
