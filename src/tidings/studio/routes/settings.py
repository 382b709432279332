"""Settings: API keys (create, reveal, revoke), providers (forms from config models, and
their health: messages sent and failed over the last 24 hours, and their last errors), and
the environment's default open and click tracking."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet
from fastapi import APIRouter
from starlette.responses import Response

from tidings.dependencies import ConfigCipherDep, KeyCipherDep, OutboundDep
from tidings.engagement import service as engagement_service
from tidings.engagement.schemas import EnvironmentTracking
from tidings.errors import AppError, BadRequest, NotFound
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository, ProviderCounts
from tidings.provider import service as provider_service
from tidings.provider.registry import load_all
from tidings.studio import provider_form
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, see_other
from tidings.studio.listing import ListQuery, empty
from tidings.studio.templating import render, render_form
from tidings.workspace import service as workspace_service
from tidings.workspace.scopes import SECRET

router = APIRouter()

# Provider health: the window of its counts, and the errors a page of it lists.
HEALTH_WINDOW = timedelta(hours=24)
ERRORS_PAGE_SIZE = 10
NO_COUNTS = ProviderCounts(sent=0, failed=0)
FLASHES = {
    "created": "Key created.",
    "revoked": "Key revoked.",
    "tracking": "Tracking defaults saved.",
}


@router.get("/settings")
def settings_page(page: Page, key_cipher: KeyCipherDep, config_cipher: ConfigCipherDep) -> Response:
    with page.database.read() as session:
        keys = workspace_service.list_keys(session, key_cipher)
        configured = provider_service.configured(session, page.scope.environment_id, config_cipher)
        health = MessageRepository(session).provider_counts(
            page.scope.environment_id, utcnow() - HEALTH_WINDOW
        )
        tracking = engagement_service.environment_tracking(session, page.scope.environment_id)
    catalog = sorted(load_all().values(), key=lambda cls: (cls.channel, cls.name))
    return render(
        page.request,
        "settings.html",
        section="settings",
        keys=keys,
        configured={provider.name: provider for provider in configured},
        health=health,
        no_counts=NO_COUNTS,
        catalog=catalog,
        tracking=tracking,
        flash=page.flash(FLASHES),
    )


@router.post("/settings/tracking")
def save_tracking(page: Page, form: CheckedForm) -> Response:
    """As PUT /settings/tracking, for the environment shown."""
    chosen = EnvironmentTracking(
        opens=form_text(form, "opens") == "on", clicks=form_text(form, "clicks") == "on"
    )
    with page.database.write() as (session, _):
        engagement_service.set_environment_tracking(session, page.scope.environment_id, chosen)
    return see_other(f"{PREFIX}/settings", "tracking")


@router.post("/settings/keys")
def create_key(page: Page, form: CheckedForm, key_cipher: KeyCipherDep) -> Response:
    with page.database.write() as (session, _):
        workspace_service.create_key(
            session,
            key_cipher,
            form_text(form, "environment").strip(),
            form_text(form, "scope").strip() or SECRET,
        )
    return see_other(f"{PREFIX}/settings", "created")


@router.post("/settings/keys/{key_id}/reveal")
def reveal_key(key_id: str, page: Page, form: CheckedForm, key_cipher: KeyCipherDep) -> Response:
    """The full key, for a signed-in admin only (htmx swaps it into the row)."""
    with page.database.read() as session:
        found = [
            key for key in workspace_service.list_keys(session, key_cipher) if key.id == key_id
        ]
    if not found:
        raise NotFound(f"No API key {key_id!r}.", code="key_not_found")
    return render(page.request, "_key.html", key=found[0])


@router.post("/settings/keys/{key_id}/revoke")
def revoke_key(key_id: str, page: Page, form: CheckedForm) -> Response:
    with page.database.write() as (session, _):
        workspace_service.revoke_key(session, key_id)
    return see_other(f"{PREFIX}/settings", "revoked")


def _provider_page(
    page: Page,
    config_cipher: Fernet,
    name: str,
    *,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    cls = provider_service.provider_class(name)
    query = ListQuery(page.request, f"{PREFIX}/settings/providers/{name}", ERRORS_PAGE_SIZE)
    with page.database.read() as session:
        messages = MessageRepository(session)
        counts = messages.provider_counts(page.scope.environment_id, utcnow() - HEALTH_WINDOW).get(
            name, NO_COUNTS
        )
        errors = query.newest_first(
            lambda before_id, after_id, limit: messages.provider_errors(
                page.scope.environment_id,
                name,
                before_id=before_id,
                after_id=after_id,
                limit=limit,
            )
        )
        current = next(
            (
                provider
                for provider in provider_service.configured(
                    session, page.scope.environment_id, config_cipher
                )
                if provider.name == name
            ),
            None,
        )
    masked = provider_service.masked(current.config) if current else None
    return render_form(
        page.request,
        "provider.html",
        error,
        400 if query.errors else 200,
        section="settings",
        provider=cls,
        configured=current,
        fields=provider_form.fields(cls.config_model, masked),
        counts=counts,
        provider_errors=errors if not query.errors else empty(),
        paging_errors=query.errors,
        flash=flash,
    )


@router.get("/settings/providers/{name}")
def provider_page(
    name: str, page: Page, config_cipher: ConfigCipherDep, saved: str = ""
) -> Response:
    return _provider_page(
        page,
        config_cipher,
        name,
        flash="Saved. Secrets are kept and never shown." if saved else None,
    )


@router.post("/settings/providers/{name}")
def configure_provider(
    name: str, page: Page, form: CheckedForm, config_cipher: ConfigCipherDep, outbound: OutboundDep
) -> Response:
    cls = provider_service.provider_class(name)
    try:
        values = provider_form.values(cls.config_model, form)
        priority_text = form_text(form, "priority").strip()
        try:
            priority = int(priority_text) if priority_text else None
        except ValueError as exc:
            raise BadRequest("priority: give a whole number.", field="priority") from exc
        with page.database.write() as (session, _):
            provider_service.configure(
                session,
                page.scope,
                config_cipher,
                name,
                values,
                priority,
                outbound=outbound,
            )
    except AppError as exc:
        return _provider_page(page, config_cipher, name, error=exc)
    return see_other(f"{PREFIX}/settings/providers/{name}?saved=1")


@router.post("/settings/providers/{name}/remove")
def remove_provider(name: str, page: Page, form: CheckedForm) -> Response:
    with page.database.write() as (session, _):
        provider_service.remove(session, page.scope, name)
    return see_other(f"{PREFIX}/settings")
