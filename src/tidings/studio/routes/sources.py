"""Integrations → Signed sources: Segment Webhooks senders verified by `X-Signature`.

Every change goes through `tidings.ingest.sources`, as `/sources` does. A new secret is shown
in clear once, in the answer to the form that made it; afterwards only its last four
characters.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from fastapi import APIRouter
from starlette.responses import Response

from tidings.dependencies import ConfigCipherDep
from tidings.errors import AppError
from tidings.ingest import sources
from tidings.ingest.sources import StoredSecret
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, see_other
from tidings.studio.templating import render_form

router = APIRouter()

SOURCES_PAGE = f"{PREFIX}/sources"
FLASHES = {
    "deleted": "Source deleted: its webhook URL now answers 404.",
    "secret-deleted": "Secret deleted: requests signed with it now get 401.",
}


def _list_page(
    page: Page,
    fernet: Fernet,
    *,
    error: AppError | None = None,
    name: str = "",
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        rows = [sources.view(fernet, row) for row in sources.listing(session, page.scope)]
    return render_form(
        page.request,
        "sources.html",
        error,
        section="sources",
        sources=rows,
        name=name,
        flash=flash,
    )


def _source_page(
    page: Page,
    fernet: Fernet,
    source_id: str,
    *,
    status_code: int = 200,
    new_secret: StoredSecret | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        source: dict[str, Any] = sources.view(fernet, sources.get(session, page.scope, source_id))
    return render_form(
        page.request,
        "source.html",
        error,
        status_code,
        section="sources",
        source=source,
        url=page.absolute_url(source["path"]),
        new_secret=new_secret,
        max_secrets=sources.MAX_SECRETS,
        flash=flash,
    )


@router.get("/sources")
def sources_page(page: Page, config_cipher: ConfigCipherDep) -> Response:
    return _list_page(page, config_cipher, flash=page.flash(FLASHES))


@router.post("/sources")
def create_source(page: Page, form: CheckedForm, config_cipher: ConfigCipherDep) -> Response:
    """Create a source; its page answers, with the generated secret shown this once."""
    name = form_text(form, "name")
    try:
        with page.database.write() as (session, _):
            row, secret = sources.create(session, page.scope, config_cipher, name, None)
            source_id = row.id
    except AppError as exc:
        return _list_page(page, config_cipher, error=exc, name=name)
    return _source_page(page, config_cipher, source_id, status_code=201, new_secret=secret)


@router.get("/sources/{source_id}")
def source_page(source_id: str, page: Page, config_cipher: ConfigCipherDep) -> Response:
    return _source_page(page, config_cipher, source_id, flash=page.flash(FLASHES))


@router.post("/sources/{source_id}/secrets")
def add_secret(
    source_id: str, page: Page, form: CheckedForm, config_cipher: ConfigCipherDep
) -> Response:
    """Rotation, first half: a second secret, shown this once; both are accepted until the
    old one is deleted."""
    try:
        with page.database.write() as (session, _):
            _, secret = sources.add_secret(session, page.scope, config_cipher, source_id, None)
    except AppError as exc:
        return _source_page(page, config_cipher, source_id, error=exc)
    return _source_page(page, config_cipher, source_id, status_code=201, new_secret=secret)


@router.post("/sources/{source_id}/secrets/{secret_id}/delete")
def delete_secret(
    source_id: str, secret_id: str, page: Page, form: CheckedForm, config_cipher: ConfigCipherDep
) -> Response:
    try:
        with page.database.write() as (session, _):
            sources.remove_secret(session, page.scope, config_cipher, source_id, secret_id)
    except AppError as exc:
        return _source_page(page, config_cipher, source_id, error=exc)
    return see_other(f"{SOURCES_PAGE}/{source_id}", "secret-deleted")


@router.post("/sources/{source_id}/delete")
def delete_source(source_id: str, page: Page, form: CheckedForm) -> Response:
    with page.database.write() as (session, _):
        sources.delete(session, page.scope, source_id)
    return see_other(SOURCES_PAGE, "deleted")
