"""Vendor delivery callbacks. No API key: the vendor's signature is the credential, and the
environment is the one of the delivery the callback names. Each route hands the request to
its vendor's provider (`callback.service.handle_status_callback`)."""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, Request

from tidings.callback import service
from tidings.callback.schemas import CallbackResult
from tidings.db import Database
from tidings.dependencies import ConfigCipherDep, DatabaseDep
from tidings.provider.base import Provider, StatusCallback
from tidings.provider.email.sendgrid import SendGridProvider
from tidings.provider.sms.twilio import TwilioProvider
from tidings.routing import ApiRoute

router = APIRouter(prefix="/callbacks", tags=["callbacks"], route_class=ApiRoute)


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def _first(value: str | None) -> str | None:
    # Proxies chain forwarded values: "https, http"; the first is the client's.
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def url_as_seen(request: Request) -> str:
    """The URL the caller requested, honouring X-Forwarded-Proto and X-Forwarded-Host."""
    url = request.url
    proto = _first(request.headers.get("x-forwarded-proto"))
    host = _first(request.headers.get("x-forwarded-host"))
    if proto:
        url = url.replace(scheme=proto)
    if host:
        url = url.replace(netloc=host)
    return str(url)


def _handle(
    config_cipher: Fernet,
    database: Database,
    provider: type[Provider[Any]],
    body: bytes,
    request: Request,
) -> CallbackResult:
    callback = StatusCallback(
        body=body, url=url_as_seen(request), headers=request.headers, query=request.query_params
    )
    with database.write() as (session, _):
        return service.handle_status_callback(session, config_cipher, provider, callback)


@router.post("/sendgrid", response_model=CallbackResult)
def sendgrid_events(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """SendGrid's Event Webhook: a JSON array of events.

    `delivered` marks the message DELIVERED; `bounce` and `dropped` mark the delivery failed
    (the message UNDELIVERABLE, reason BOUNCED, once every delivery failed); `deferred` is
    recorded in the history; other events are ignored. When the environment's SendGrid config
    has a verification key, the Signed Event Webhook headers must verify (401 otherwise).
    Events for unknown messages are counted and answered 200, so SendGrid does not retry them.
    """
    return _handle(config_cipher, database, SendGridProvider, body, request)


@router.post("/twilio", response_model=CallbackResult)
def twilio_status(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Twilio's message status callback (form-encoded `MessageSid`, `MessageStatus`, …).

    `delivered` (and `read`) marks the message DELIVERED; `undelivered` and `failed` mark the
    delivery failed with the `ErrorCode` (the message UNDELIVERABLE, reason BOUNCED, once every
    delivery failed); other statuses are recorded in the history. `X-Twilio-Signature` must
    match the auth token of the message's environment (403 otherwise). Unknown `MessageSid`s
    are counted and answered 200.
    """
    return _handle(config_cipher, database, TwilioProvider, body, request)
