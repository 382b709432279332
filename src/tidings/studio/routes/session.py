"""Sign-in (password or one-time link), sign-out and the environment switcher."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.db import Database
from tidings.dependencies import AuthLimitsDep, DatabaseDep, client_address
from tidings.errors import AppError
from tidings.models import AdminUser
from tidings.studio import auth, csrf
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, SESSION_KEY, Page, safe_next, see_other
from tidings.studio.templating import render

router = APIRouter()


@router.get("/", include_in_schema=False)
def home() -> Response:
    return see_other(f"{PREFIX}/integrations/segment")


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    request.state.csrf_token = csrf.token_for(request)
    return render(request, "sign_in.html", next=safe_next(next), error=None, email="")


def _start(request: Request, database: Database, admin_id: str) -> None:
    with database.write() as (session, _):
        admin = session.get(AdminUser, admin_id)
        assert admin is not None
        token = auth.start_session(session, admin)
    request.session[SESSION_KEY] = token
    csrf.rotate(request)


@router.post("/sign-in")
def sign_in(
    request: Request, form: CheckedForm, database: DatabaseDep, auth_limits: AuthLimitsDep
) -> Response:
    email, password = form_text(form, "email"), form_text(form, "password")
    next_path = safe_next(form_text(form, "next"))
    client = client_address(request.scope)
    try:
        with database.write() as (session, _):
            admin_id = auth.sign_in(session, auth_limits, client, email, password).id
    except AppError as exc:
        request.state.csrf_token = csrf.token_for(request)
        page = render(
            request, "sign_in.html", exc.status_code, next=next_path, error=exc.message, email=email
        )
        page.headers.update(exc.headers or {})
        return page
    _start(request, database, admin_id)
    return see_other(next_path)


@router.get("/sign-in/link")
def sign_in_link_page(request: Request, database: DatabaseDep, token: str = "") -> Response:
    # GET only shows the form: a link previewer fetching the URL does not spend it.
    with database.read() as session:
        valid = bool(token) and auth.sign_in_link_is_valid(session, token)
    request.state.csrf_token = csrf.token_for(request)
    return render(
        request, "sign_in_link.html", 200 if valid else 410, token=token, valid=valid, error=None
    )


@router.post("/sign-in/link")
def use_sign_in_link(request: Request, form: CheckedForm, database: DatabaseDep) -> Response:
    token = form_text(form, "token")
    try:
        with database.write() as (session, _):
            admin_id = auth.use_sign_in_link(
                session, token, form_text(form, "email"), form_text(form, "password")
            ).id
    except AppError as exc:
        request.state.csrf_token = csrf.token_for(request)
        return render(
            request,
            "sign_in_link.html",
            exc.status_code,
            token=token,
            valid=exc.code != "sign_in_link_invalid",
            error=exc.message,
        )
    _start(request, database, admin_id)
    return see_other(f"{PREFIX}/integrations/segment")


@router.post("/sign-out")
def sign_out(request: Request, form: CheckedForm, database: DatabaseDep) -> Response:
    token = request.session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        with database.write() as (session, _):
            auth.end_session(session, token)
    request.session.clear()
    return see_other(f"{PREFIX}/sign-in")


@router.post("/environment")
def switch_environment(page: Page, form: CheckedForm) -> Response:
    with page.database.write() as (session, _):
        auth.switch_environment(session, page.admin, form_text(form, "environment"))
    return see_other(safe_next(form_text(form, "next")))
