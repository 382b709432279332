"""The public one-click unsubscribe pages of the links in emails (preference.service makes
the links). They take no API key: the signed token is the credential, and it opens exactly
one user's choice for one topic.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from html import escape
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from tidings.dependencies import DatabaseDep, ReadSession, UnsubscribeKeyDep
from tidings.errors import AppError, BadRequest, NotFound, PayloadTooLarge
from tidings.http_errors import error_response, log_error_answer
from tidings.preference.service import verify_unsubscribe_token
from tidings.routing import ApiRoute
from tidings.unsubscribe import service

router = APIRouter(route_class=ApiRoute)

MAX_UNSUBSCRIBE_BODY = 16 * 1024

SigningKey = UnsubscribeKeyDep

_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: keep it out of Referer headers and search indexes.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#222}button{font:inherit;padding:.5rem 1rem;cursor:pointer}"
)


def _page(title: str, paragraphs: list[str], status_code: int = 200, form: str = "") -> Response:
    """A minimal HTML page. Callers pass text; everything is escaped here."""
    body = "".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}{form}</body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


_CONFIRM_FORM = (
    '<form method="post">'
    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">Unsubscribe</button></form>'
)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _failure(request: Request, error: AppError, title: str) -> Response:
    """Browsers get a page; mail clients and scripts get the usual JSON error."""
    log_error_answer(request.scope, error.status_code, error.code, None)
    if _wants_html(request):
        return _page(title, [error.message], status_code=error.status_code)
    return error_response(error)


_INVALID_LINK = NotFound(
    "This unsubscribe link is not valid: it may have been cut short or changed. Use the "
    "complete link from the email.",
    code="invalid_unsubscribe_link",
    field="token",
)
_TOPIC_GONE = NotFound(
    "The subscription topic of this link no longer exists, so nothing more will be sent about it.",
    code="topic_not_found",
    field="token",
)


async def one_click_body(request: Request) -> bool:
    """True when the body carries `List-Unsubscribe=One-Click` (RFC 8058), URL- or
    multipart-encoded."""
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(
        f"The body is over {MAX_UNSUBSCRIBE_BODY // 1024} KB. An unsubscribe request carries "
        "only List-Unsubscribe=One-Click.",
        field="body",
    )
    if declared is not None and declared.isdigit() and int(declared) > MAX_UNSUBSCRIBE_BODY:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UNSUBSCRIBE_BODY:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        document = BytesParser(policy=default_policy).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + body
        )
        for part in document.iter_parts():
            if (
                isinstance(part, EmailMessage)
                and part.get_param("name", header="content-disposition") == "List-Unsubscribe"
                and part.get_payload(decode=True) in (b"One-Click", b"One-Click\r\n")
            ):
                return True
        return False
    fields = parse_qs(body.decode("utf-8", "replace"))
    return "One-Click" in fields.get("List-Unsubscribe", [])


@router.get("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, key: SigningKey, session: ReadSession
) -> Response:
    """A confirmation page with an Unsubscribe button. Changes nothing: mail scanners
    prefetch links."""
    fields = verify_unsubscribe_token(key, token)
    if fields is None:
        return _failure(request, _INVALID_LINK, "Invalid unsubscribe link")
    return _state_page(request, service.unsubscribe_state(session, *fields))


@router.post("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse)
def one_click_unsubscribe(
    token: str,
    request: Request,
    key: SigningKey,
    database: DatabaseDep,
    one_click: Annotated[bool, Depends(one_click_body)],
) -> Response:
    """RFC 8058 one-click unsubscribe: a form POST of `List-Unsubscribe=One-Click` opts the
    user out of the link's topic (REQUIRED topics stay as they are) and answers 200."""
    fields = verify_unsubscribe_token(key, token)
    if fields is None:
        return _failure(request, _INVALID_LINK, "Invalid unsubscribe link")
    if not one_click:
        missing = BadRequest(
            "Send the form body List-Unsubscribe=One-Click "
            "(application/x-www-form-urlencoded) to unsubscribe, as RFC 8058 specifies.",
            code="one_click_body_required",
            field="List-Unsubscribe",
        )
        return _failure(request, missing, "Nothing was changed")
    with database.write() as (session, _):
        state = service.unsubscribe(session, *fields)
    return _state_page(request, state)


def _state_page(request: Request, state: service.UnsubscribeState | None) -> Response:
    """The page for the user's state in the link's topic: the topic gone, a REQUIRED topic,
    unsubscribed (as the one-click POST always leaves them), or the confirmation form."""
    if state is None:
        return _failure(request, _TOPIC_GONE, "Topic no longer exists")
    if state.required:
        return _page(
            f"You can't unsubscribe from {state.topic_name}",
            [f"{state.topic_name} messages are required, so they are always sent."],
        )
    if state.opted_out:
        return _page(
            f"You are unsubscribed from {state.topic_name}",
            [f"You will no longer receive {state.topic_name} messages."],
        )
    return _page(
        f"Unsubscribe from {state.topic_name}?",
        [f"You will no longer receive {state.topic_name} messages."],
        form=_CONFIRM_FORM,
    )
