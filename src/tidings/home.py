"""What a browser finds outside the API and Studio: the landing page at `/`, the favicon, and
the API reference (`/docs`, `/redoc`) with its scripts and styles served from the installed
packages, so that it works on a machine with no way out to a CDN."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from tidings import __version__
from tidings.studio.app import STATIC as STUDIO_STATIC
from tidings.studio.dependencies import PREFIX as STUDIO

# Swagger UI's and ReDoc's bundles, as the fastapi-offline package ships them.
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/docs/assets"
FAVICON = STUDIO_STATIC / "favicon.svg"

_PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}

# The API reference pages: an inline script starts Swagger UI, both UIs set inline styles,
# and ReDoc searches in a worker. Nothing may come from elsewhere: ReDoc's sidebar would
# otherwise fetch its maker's logo from a CDN on every view.
_REFERENCE_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}

router = APIRouter(include_in_schema=False)


def _links(root: str) -> dict[str, str]:
    return {
        "studio": f"{root}{STUDIO}/",
        "docs": f"{root}/docs",
        "redoc": f"{root}/redoc",
        "openapi": f"{root}/openapi.json",
        "health": f"{root}/health",
    }


def _landing_page(links: dict[str, str]) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Tidings</title>
  <link rel="icon" href="{escape(links["studio"])}static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{escape(links["studio"])}static/studio.css">
</head>
<body>
<main class="narrow">
  <h1>Tidings {escape(__version__)}</h1>
  <p>Self-hosted notifications from your Segment events.</p>
  <ul>
    <li><a href="{escape(links["studio"])}">Studio</a>: see what arrived and what Tidings did
      about it, and set up providers, templates and automations.</li>
    <li><a href="{escape(links["docs"])}">API reference</a>
      (or <a href="{escape(links["redoc"])}">the same as one page</a>,
      <a href="{escape(links["openapi"])}">OpenAPI document</a>).</li>
  </ul>
</main>
</body>
</html>
"""


@router.get("/")
def home(request: Request) -> Response:
    """A browser gets a page leading to Studio and the API reference; any other client (which
    asked for no HTML) gets the same links as JSON."""
    links = _links(request.scope.get("root_path", ""))
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_landing_page(links), headers=_PAGE_HEADERS)
    return JSONResponse({"name": "Tidings", "version": __version__, "links": links})


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"}
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _reference_page(
        request,
        get_swagger_ui_html,
        {
            "swagger_js_url": f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            "swagger_css_url": f"{DOCS_ASSETS_URL}/swagger-ui.css",
            "swagger_favicon_url": "/favicon.ico",
        },
        oauth2_redirect_url=None,
        # Swagger UI would otherwise show a badge image fetched from its online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _reference_page(
        request,
        get_redoc_html,
        {
            "redoc_js_url": f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            "redoc_favicon_url": "/favicon.ico",
        },
        with_google_fonts=False,
    )


def _reference_page(
    request: Request,
    render: Callable[..., HTMLResponse],
    assets: dict[str, str],
    **options: Any,
) -> HTMLResponse:
    """An API reference page of the app's OpenAPI document, as FastAPI's `render` writes it:
    `assets` are the URLs of its scripts, styles and icon, below the root path the app is
    served at; `options` are the rest of `render`'s arguments."""
    root = request.scope.get("root_path", "")
    app: FastAPI = request.app
    page = render(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} API reference",
        **{name: f"{root}{path}" for name, path in assets.items()},
        **options,
    )
    page.headers.update(_REFERENCE_HEADERS)
    return page


def install(app: FastAPI) -> None:
    """Add the pages above to `app`, which must be built with `docs_url=None` and
    `redoc_url=None` (FastAPI's own pages load their scripts from a CDN)."""
    app.include_router(router)
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
