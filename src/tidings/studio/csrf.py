"""CSRF: a random token per browser session, kept in the signed session cookie.

Every form carries it as `csrf_token`; htmx requests send it as the `X-CSRF-Token` header.
A POST without it, or with another value, is refused with 403 before anything runs.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from tidings.errors import Forbidden
from tidings.kit.json_input import check_form_fields

SESSION_KEY = "csrf"
HEADER = "X-CSRF-Token"
FIELD = "csrf_token"


def token_for(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate(request: Request) -> str:
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(request.session[SESSION_KEY])


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token (field or header) matches the session's."""
    form = await request.form()
    expected = request.session.get(SESSION_KEY)
    presented = request.headers.get(HEADER) or form.get(FIELD)
    if (
        not isinstance(expected, str)
        or not expected
        or not isinstance(presented, str)
        or not hmac.compare_digest(expected.encode(), presented.encode())
    ):
        raise Forbidden(
            "The form's CSRF token is missing or does not match this browser session. Reload "
            "the page and submit the form again.",
            code="csrf_failed",
            field=FIELD,
        )
    check_form_fields(form.multi_items())
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def form_text(form: FormData, name: str) -> str:
    """A text field of the form; "" when absent or a file. Line breaks are "\n": browsers
    submit a textarea's as "\r\n", and an unchanged Save must store what it showed."""
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""
