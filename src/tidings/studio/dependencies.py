"""Who is signed in, for every Studio page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.responses import RedirectResponse

from tidings.db import Database
from tidings.dependencies import DatabaseDep
from tidings.studio import auth, csrf
from tidings.workspace.service import Scope

SESSION_KEY = "session"
PREFIX = "/studio"


class SignInRequired(Exception):
    """Raised for a page that needs an admin; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def page_path(area: str, object_id: str) -> str:
    """The path of an object's page in a Studio area (`lists`, `topics`, …): the object's id
    is one path segment, whatever it holds (`/` included)."""
    return f"{PREFIX}/{area}/{quote(object_id, safe='')}"


def see_other(path: str, flash: str | None = None) -> RedirectResponse:
    """On to the page at `path` with 303 See Other (after a form, the browser GETs it); with
    `flash`, the page says what the form did by its message for it (`Page.flash`)."""
    return RedirectResponse(f"{path}?flash={flash}" if flash else path, status_code=303)


def sign_in_url(next_path: str | None = None) -> str:
    if not next_path:
        return f"{PREFIX}/sign-in"
    return f"{PREFIX}/sign-in?next={quote(next_path, safe='/')}"


def safe_next(value: object) -> str:
    """Only a Studio path is a place to go back to after signing in (no open redirect)."""
    if isinstance(value, str) and value.startswith(f"{PREFIX}/") and "//" not in value:
        return value
    return f"{PREFIX}/integrations/segment"


def wants_fragment(request: Request) -> bool:
    """Whether htmx made the request (its `HX-Request` header), for a part of a page to swap
    in rather than the whole page."""
    return bool(request.headers.get("hx-request"))


def signed_in(request: Request, database: DatabaseDep) -> auth.SignedIn:
    token = request.session.get(SESSION_KEY)
    found = None
    if isinstance(token, str) and token:
        with database.read() as session:
            found = auth.resolve_session(session, token)
    if found is None:
        request.session.pop(SESSION_KEY, None)
        raise SignInRequired(_return_path(request))
    request.state.signed_in = found
    request.state.csrf_token = csrf.token_for(request)
    return found


def _return_path(request: Request) -> str:
    """Where signing in leads back to: the page asked for; for a part of a page that htmx
    asked for (a live list's poll, say), the page it was on (`HX-Current-URL`), never the
    part itself; after a form, nowhere in particular."""
    if wants_fragment(request):
        return urlsplit(request.headers.get("hx-current-url", "")).path
    return request.url.path if request.method == "GET" else ""


Admin = Annotated[auth.SignedIn, Depends(signed_in)]


@dataclass(frozen=True, slots=True)
class AdminPage:
    """What a Studio page is made from: the request, the signed-in admin and the database."""

    request: Request
    admin: auth.SignedIn
    database: Database

    @property
    def scope(self) -> Scope:
        """The environment the admin has chosen in the top bar, as an API key's scope."""
        return self.admin.scope

    def flash(self, messages: Mapping[str, str]) -> str | None:
        """What the form that led here did (`see_other`), as `messages` says it; None
        without a `flash` in the query string, or with one that `messages` does not know."""
        return messages.get(self.request.query_params.get("flash", ""))

    @property
    def fragment(self) -> bool:
        return wants_fragment(self.request)

    def absolute_url(self, path: str) -> str:
        """`path` on this server, at the address the browser reached it by: a URL to give to
        another system."""
        return f"{self.request.url.scheme}://{self.request.url.netloc}{path}"


def admin_page(request: Request, admin: Admin, database: DatabaseDep) -> AdminPage:
    return AdminPage(request, admin, database)


Page = Annotated[AdminPage, Depends(admin_page)]
