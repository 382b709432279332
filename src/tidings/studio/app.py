"""The Studio ASGI app, mounted by `tidings.app.create_app` at /studio."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.http_errors import (
    INTERNAL_ERROR,
    install_error_handlers,
    log_error_answer,
    new_error_id,
)
from tidings.runtime import Runtime
from tidings.studio.dependencies import PREFIX, SignInRequired, sign_in_url, wants_fragment
from tidings.studio.routes import (
    analytics,
    audiences,
    automations,
    broadcasts,
    events,
    lists,
    messages,
    notifications,
    profiles,
    session,
    settings,
    sources,
    suppressions,
    tenants,
    topics,
    versions,
    webhooks,
)
from tidings.studio.templating import TEMPLATES, render

STATIC = TEMPLATES.parent / "static"
SESSION_COOKIE = "tidings_studio"

# Scripts only from Tidings itself: event data rendered into a page can never run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds the headers above to every Studio response but static files, except those a
    response sets itself (the rendered email's frame allows its inline styles, and framing
    by Studio)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(f"{PREFIX}/static/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own = {name.lower() for name, _ in headers}
                headers += [header for header in SECURITY_HEADERS if header[0] not in own]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ErrorPage:
    """An unexpected exception in a Studio page answers Studio's error page (500, in its
    layout, with an error id) rather than the API's JSON: the log line of the failure holds
    the same id, followed by the traceback, which the page never shows. An htmx request gets
    the message alone, for its target. The API keeps its JSON answer (`http_errors`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late for a page of its own: the server logs it
                raise
            error_id = new_error_id()
            log_error_answer(scope, 500, INTERNAL_ERROR, None, error_id=error_id, exc_info=exc)
            request = Request(scope)
            template = "_error.html" if wants_fragment(request) else "error.html"
            page = render(request, template, 500, error_id=error_id)
            await page(scope, receive, send)


def _session_secret(secret: bytes) -> str:
    return hashlib.sha256(b"tidings studio session\0" + secret).hexdigest()


def create_studio(runtime: Runtime) -> FastAPI:
    studio = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    runtime.provide(studio.state)
    install_error_handlers(studio)

    async def _sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        url = sign_in_url(exc.next_path)
        if wants_fragment(request):
            return Response(status_code=401, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    studio.add_exception_handler(SignInRequired, _sign_in_required)
    for module in (
        session,
        events,
        sources,
        webhooks,
        automations,
        versions,
        notifications,
        messages,
        analytics,
        profiles,
        tenants,
        lists,
        audiences,
        broadcasts,
        topics,
        suppressions,
        settings,
    ):
        studio.include_router(module.router)
    studio.mount("/static", StaticFiles(directory=STATIC), name="static")
    studio.add_middleware(ErrorPage)
    studio.add_middleware(SecurityHeaders)
    studio.add_middleware(
        SessionMiddleware,
        secret_key=_session_secret(runtime.secret),
        session_cookie=SESSION_COOKIE,
        max_age=14 * 24 * 3600,
        path=PREFIX,
        same_site="lax",
        # Behind HTTPS, the cookie is never sent in clear.
        https_only=(runtime.settings.public_url or "").startswith("https://"),
    )
    return studio


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Mount Studio on the Tidings app at /studio."""
    app.mount(PREFIX, create_studio(runtime))
