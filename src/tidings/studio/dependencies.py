"""Who is signed in, for every Studio page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from tidings.dependencies import DatabaseDep
from tidings.studio import auth, csrf

SESSION_KEY = "session"
PREFIX = "/studio"


class SignInRequired(Exception):
    """Raised for a page that needs an admin; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sign_in_url(next_path: str | None = None) -> str:
    if not next_path:
        return f"{PREFIX}/sign-in"
    return f"{PREFIX}/sign-in?next={quote(next_path, safe='/')}"


def safe_next(value: object) -> str:
    """Only a Studio path is a place to go back to after signing in (no open redirect)."""
    if isinstance(value, str) and value.startswith(f"{PREFIX}/") and "//" not in value:
        return value
    return f"{PREFIX}/integrations/segment"


def signed_in(request: Request, database: DatabaseDep) -> auth.SignedIn:
    token = request.session.get(SESSION_KEY)
    found = None
    if isinstance(token, str) and token:
        with database.read() as session:
            found = auth.resolve_session(session, token)
    if found is None:
        request.session.pop(SESSION_KEY, None)
        raise SignInRequired(request.url.path if request.method == "GET" else "")
    request.state.signed_in = found
    request.state.csrf_token = csrf.token_for(request)
    return found


Admin = Annotated[auth.SignedIn, Depends(signed_in)]
