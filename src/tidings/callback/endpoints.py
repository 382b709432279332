"""Vendor delivery callbacks. No API key: the vendor's signature (or the basic-auth
credentials it sends) is the credential, and the environment is the one of the delivery the
callback names. Each route hands the request to its vendor's provider
(`callback.service`): checked in a read transaction, applied in a write transaction;
docs/deliverability.md has each vendor's set-up.

`hits_router`: the open pixel and tracked links that mail clients fetch, `/t/o/{token}` and
`/t/c/{token}`. They take no API key either: the signed token is the credential, and a token
that does not verify is a 404. Each answer is cheap and bounded: the token is checked without
the database, the hit is one small write transaction (hits.py), and a failure to record it
is logged, never answered: the recipient still gets the pixel or the link."""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any

import httpx
from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import RedirectResponse

from tidings.callback import hits, service
from tidings.callback.schemas import CallbackResult
from tidings.db import Database
from tidings.dependencies import (
    ConfigCipherDep,
    DatabaseDep,
    EngagementKeyDep,
    HttpDep,
    SettingsDep,
    client_address,
    get_settings,
)
from tidings.engagement.links import verify_click, verify_open
from tidings.errors import NotFound
from tidings.kit.time import utcnow
from tidings.provider.base import Provider, StatusCallback
from tidings.provider.email.mailgun import MailgunProvider
from tidings.provider.email.postmark import PostmarkProvider
from tidings.provider.email.resend import ResendProvider
from tidings.provider.email.sendgrid import SendGridProvider
from tidings.provider.email.ses import SesProvider
from tidings.provider.sms.twilio import TwilioProvider
from tidings.provider.sms.vonage import VonageProvider
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
    http: httpx.Client | None = None,
) -> CallbackResult:
    callback = StatusCallback(
        body=body,
        url=url_as_seen(request),
        headers=request.headers,
        query=request.query_params,
        http=http,
        now=utcnow(),
    )
    with database.read() as session:
        checked = service.check_status_callback(session, config_cipher, provider, callback)
    if checked.done is not None:
        return checked.done
    limit = get_settings(request).soft_bounce_limit
    with database.write() as (session, outbox):
        return service.apply_status_callback(session, outbox, checked, soft_bounce_limit=limit)


@router.post("/sendgrid", response_model=CallbackResult)
def sendgrid_events(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """SendGrid's Event Webhook: a JSON array of events.

    `delivered` → DELIVERED, `open` → OPENED, `click` → CLICKED, `bounce` → BOUNCED (hard;
    `blocked`: soft), `spamreport` → COMPLAINED, `dropped` → the delivery failed (the message
    UNDELIVERABLE, reason BOUNCED, once every delivery failed); `deferred` is recorded in
    the history; other events are ignored. When the environment's SendGrid config
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


@router.post("/postmark", response_model=CallbackResult)
def postmark_events(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Postmark's webhooks (one JSON record per request, by `RecordType`): `Delivery` →
    DELIVERED, `Bounce` → BOUNCED (hard or soft by its `Type`), `SpamComplaint` →
    COMPLAINED, `Open` → OPENED, `Click` → CLICKED. The webhook URL's basic-auth user name
    and password must match the Postmark config's `webhook_username` and `webhook_password`
    (401 otherwise)."""
    return _handle(config_cipher, database, PostmarkProvider, body, request)


@router.post("/mailgun", response_model=CallbackResult)
def mailgun_events(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Mailgun's webhooks (`{"signature": {...}, "event-data": {...}}`): `delivered` →
    DELIVERED, `failed` → BOUNCED (`severity` permanent: hard) or recorded (temporary: Mailgun
    tries again), `complained` → COMPLAINED, `opened` → OPENED, `clicked` → CLICKED. The
    signature (HMAC-SHA256 of timestamp and token) must verify with the config's
    `webhook_signing_key` (401 otherwise)."""
    return _handle(config_cipher, database, MailgunProvider, body, request)


@router.post("/resend", response_model=CallbackResult)
def resend_events(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Resend's webhooks: `email.delivered` → DELIVERED, `email.bounced` → BOUNCED,
    `email.complained` → COMPLAINED, `email.opened` → OPENED, `email.clicked` → CLICKED,
    `email.delivery_delayed` is recorded; others are ignored. The `svix-signature` must
    verify with the config's `webhook_secret` (`whsec_…`) within five minutes of
    `svix-timestamp` (401 otherwise)."""
    return _handle(config_cipher, database, ResendProvider, body, request)


@router.post("/vonage", response_model=CallbackResult)
def vonage_receipts(
    body: RawBody, request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Vonage SMS delivery receipts, posted as JSON or a form: `delivered` → DELIVERED;
    `failed`, `rejected`, `expired` → the delivery failed with the `err-code`; `accepted`,
    `buffered` are recorded. With the config's `signature_secret`, the receipt's `sig` must
    verify (401 otherwise)."""
    return _handle(config_cipher, database, VonageProvider, body, request)


@router.get("/vonage", response_model=CallbackResult)
def vonage_receipts_by_get(
    request: Request, config_cipher: ConfigCipherDep, database: DatabaseDep
) -> CallbackResult:
    """Vonage SMS delivery receipts as query parameters, for an account whose webhook
    method is GET; the same as the POST."""
    return _handle(config_cipher, database, VonageProvider, b"", request)


@router.post("/ses", response_model=CallbackResult)
def ses_notifications(
    body: RawBody,
    request: Request,
    config_cipher: ConfigCipherDep,
    database: DatabaseDep,
    http: HttpDep,
) -> CallbackResult:
    """Amazon SES notifications and events, through an Amazon SNS HTTPS subscription.

    `Delivery` → DELIVERED, `Open` → OPENED, `Click` → CLICKED, `Complaint` → COMPLAINED,
    `Bounce` → BOUNCED (`Permanent`: hard; otherwise soft), `Reject` → the delivery failed,
    `DeliveryDelay` is recorded. Every SNS message must be signed by SNS (its certificate is
    fetched from an sns.<region>.amazonaws.com host) and come from the SES config's
    `sns_topic_arn` (403 otherwise); a `SubscriptionConfirmation` for that topic is confirmed
    (`subscribed: 1`)."""
    return _handle(config_cipher, database, SesProvider, body, request, http)


# Opens and clicks

logger = logging.getLogger(__name__)

hits_router = APIRouter(route_class=ApiRoute)

# Any token that does not verify is a 404, one too long included (`verify_fields` refuses
# one over MAX_SIGNED_TOKEN_LENGTH before looking at it).
Token = Annotated[str, Path(description="The signed token of the pixel or link.")]

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {
    # Each open is a request: no cache, proxy or browser, may answer it instead.
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    # The token is in the URL: keep it out of Referer headers and search indexes.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
_INVALID_TRACKING_LINK = NotFound(
    "This link is not one Tidings made, or it was changed or cut short.",
    code="invalid_tracking_link",
    field="token",
)


class _HitRecorder:
    """Records an open or a click of the request: who fetched it, in one small write
    transaction."""

    def __init__(self, request: Request, database: DatabaseDep, settings: SettingsDep) -> None:
        self.request = request
        self.database = database
        self.seconds = settings.machine_engagement_seconds

    def record(self, message_id: str, url: str | None) -> None:
        hit = hits.Hit(
            message_id=message_id,
            user_agent=self.request.headers.get("user-agent", ""),
            client_ip=client_address(self.request.scope),
            url=url,
        )
        try:
            with self.database.write() as (session, outbox):
                hits.record_hit(session, outbox, hit, self.seconds)
        except Exception:
            # The recipient still gets the pixel or the link.
            logger.exception("could not record a tracked %s", "click" if url else "open")


HitRecorder = Annotated[_HitRecorder, Depends(_HitRecorder)]


@hits_router.get(
    "/t/o/{token}",
    tags=["tracking"],
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF."}},
)
def open_pixel(token: Token, key: EngagementKeyDep, recorder: HitRecorder) -> Response:
    """The open pixel of a tracked email: records an open, answers a 1x1 GIF."""
    message_id = verify_open(key, token)
    if message_id is None:
        raise _INVALID_TRACKING_LINK
    recorder.record(message_id, None)
    return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)


@hits_router.get(
    "/t/c/{token}",
    tags=["tracking"],
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the link's URL."}},
)
def tracked_link(token: Token, key: EngagementKeyDep, recorder: HitRecorder) -> Response:
    """A tracked link: records a click, redirects to the URL Tidings signed into it."""
    verified = verify_click(key, token)
    if verified is None:
        raise _INVALID_TRACKING_LINK
    message_id, url = verified
    recorder.record(message_id, url)
    return RedirectResponse(url, status_code=302, headers=_NO_CACHE)
