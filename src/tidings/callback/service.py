"""Delivery-status callbacks: what a vendor's report does to a delivery and its message.

Both endpoints find the delivery first (the environment is the delivery's), check the vendor's
signature with that environment's provider config, and then hand each report to
`apply_delivery_status` (final outcomes) or `record_provider_status` (intermediate statuses).

SendGrid Event Webhook (a JSON array of events):
- `delivered` → delivered; `bounce` (including `type: blocked`) and `dropped` → undeliverable;
- `deferred` → recorded in the history (SendGrid is still trying);
- `processed`, `open`, `click`, `spamreport`, `unsubscribe`, `group_*` and anything else are
  ignored: Tidings already recorded SENT, and it does not track engagement yet.
- The delivery is the message's `email` delivery on `sendgrid`, found by `tidings_message_id`
  (Tidings sends it as a custom arg, which SendGrid copies onto every event), or else by the
  `sg_message_id` prefix before the first "." (the `X-Message-Id` recorded when sending).

Twilio status callback (form-encoded):
- `delivered` and `read` → delivered; `undelivered` and `failed` → undeliverable, with the
  `ErrorCode` (and `ErrorMessage` when given) in the detail;
- any other `MessageStatus` (`queued`, `sending`, `sent`, `accepted`, …) is recorded.
- The delivery is found by `tidings_message_id` in the callback URL's query when present, or
  else by `MessageSid` (the `sid` recorded when sending).

Unknown messages are counted and ignored (answered 200) so vendors do not retry them forever.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from tidings.callback.repository import CallbackRepository
from tidings.callback.schemas import CallbackResult
from tidings.errors import BadRequest, Forbidden, Unauthorized
from tidings.kit import json_input
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import DeliveryStatus, Message, MessageDelivery, MessageStatus
from tidings.provider.base import EXCERPT_LIMIT, ProviderConfig
from tidings.provider.service import ConfiguredProvider, configured
from tidings.provider.sms.twilio import TwilioConfig

Outcome = Literal["delivered", "undeliverable"]

SENDGRID = "sendgrid"
TWILIO = "twilio"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"

SENDGRID_OUTCOMES: dict[str, Outcome] = {
    "delivered": "delivered",
    "bounce": "undeliverable",
    "dropped": "undeliverable",
}
SENDGRID_RECORDED = frozenset({"deferred"})
TWILIO_OUTCOMES: dict[str, Outcome] = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undeliverable",
    "failed": "undeliverable",
}

BOUNCED = "BOUNCED"
PROVIDER_STATUS = "PROVIDER_STATUS"


def _excerpt(raw: dict[str, Any]) -> str:
    return orjson.dumps(raw, default=str).decode()[:EXCERPT_LIMIT]


def _lock(session: Session, delivery: MessageDelivery) -> tuple[MessageDelivery, Message]:
    # The pipeline's order: the delivery, then its message.
    repository = MessageRepository(session)
    locked = repository.lock_delivery(delivery.id)
    assert locked is not None
    message = repository.lock_by_pk(locked.message_pk)
    assert message is not None
    return locked, message


def _bounce_after_delivery_recorded(
    repository: MessageRepository, message: Message, delivery: MessageDelivery
) -> bool:
    return any(
        event.type == MessageStatus.UNDELIVERABLE
        and event.data.get("after_delivered")
        and event.data.get("channel") == delivery.channel
        and event.data.get("provider") == delivery.provider
        for event in repository.history(message)
    )


def apply_delivery_status(
    session: Session,
    delivery: MessageDelivery,
    outcome: Outcome,
    detail: str,
    raw: dict[str, Any],
    *,
    provider_message_id: str | None = None,
) -> bool:
    """Apply a provider's final report on one delivery. True when anything was written.

    Idempotent: a report the delivery already reflects changes nothing and records nothing.
    Locks the delivery, then its message, as the pipeline does.

    - `delivered`: the delivery becomes `delivered` and the history gets DELIVERED (channel,
      provider, detail, an excerpt of the callback). The message becomes DELIVERED with
      `delivered_at`, whatever it was before (a delivery confirmation outranks an earlier
      failure) unless it was CANCELED.
    - `undeliverable`: the delivery becomes `failed` with `detail` as its error, and the history
      gets UNDELIVERABLE with reason BOUNCED. When every delivery of the message has failed and
      none was delivered, the message becomes UNDELIVERABLE with reason BOUNCED and `detail`.
      After `delivered`, a bounce is recorded once (`after_delivered: true`) and moves nothing.
    - A delivery still `sending` (the report beat the pipeline's SENT commit) is updated all
      the same; `provider_message_id` fills the delivery's when it has none yet.
    """
    repository = MessageRepository(session)
    delivery, message = _lock(session, delivery)
    now = utcnow()
    if outcome == "delivered" and delivery.status == DeliveryStatus.DELIVERED:
        return False
    if outcome == "undeliverable" and delivery.status == DeliveryStatus.FAILED:
        return False
    if outcome == "undeliverable" and delivery.status == DeliveryStatus.DELIVERED:
        if _bounce_after_delivery_recorded(repository, message, delivery):
            return False
        repository.record(
            message,
            MessageStatus.UNDELIVERABLE,
            reason=BOUNCED,
            channel=delivery.channel,
            provider=delivery.provider,
            provider_message_id=delivery.provider_message_id,
            detail=detail,
            callback=_excerpt(raw),
            after_delivered=True,
        )
        return True

    if provider_message_id and not delivery.provider_message_id:
        delivery.provider_message_id = provider_message_id
    delivery.sending_since = None
    delivery.next_attempt_at = None
    delivery.updated_at = now
    entry: dict[str, Any] = {
        "channel": delivery.channel,
        "provider": delivery.provider,
        "provider_message_id": delivery.provider_message_id,
        "detail": detail,
        "callback": _excerpt(raw),
    }
    if outcome == "delivered":
        delivery.status = DeliveryStatus.DELIVERED
        delivery.error = None
        repository.record(message, MessageStatus.DELIVERED, **entry)
        if message.status not in (MessageStatus.DELIVERED, MessageStatus.CANCELED):
            message.status = MessageStatus.DELIVERED
            message.reason = None
            message.reason_detail = None
            message.sent_at = message.sent_at or now
            message.delivered_at = now
            message.updated_at = now
        return True

    delivery.status = DeliveryStatus.FAILED
    delivery.error = detail
    repository.record(message, MessageStatus.UNDELIVERABLE, reason=BOUNCED, **entry)
    others = [d for d in repository.deliveries(message) if d.id != delivery.id]
    if message.status not in MessageStatus.FINAL and all(
        d.status == DeliveryStatus.FAILED for d in others
    ):
        message.status = MessageStatus.UNDELIVERABLE
        message.reason = BOUNCED
        message.reason_detail = detail
        message.updated_at = now
    return True


def record_provider_status(
    session: Session, delivery: MessageDelivery, status: str, detail: str, raw: dict[str, Any]
) -> bool:
    """Record an intermediate vendor status (PROVIDER_STATUS) once; the state stays as it is.

    Returns False when the same status with the same detail is already in the history.
    """
    repository = MessageRepository(session)
    delivery, message = _lock(session, delivery)
    for event in repository.history(message):
        if (
            event.type == PROVIDER_STATUS
            and event.data.get("channel") == delivery.channel
            and event.data.get("provider") == delivery.provider
            and event.data.get("status") == status
            and event.data.get("detail") == detail
        ):
            return False
    repository.record(
        message,
        PROVIDER_STATUS,
        channel=delivery.channel,
        provider=delivery.provider,
        status=status,
        detail=detail,
        callback=_excerpt(raw),
    )
    return True


# Signatures


def _ec_public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    """SendGrid's verification key: base64 DER (as SendGrid shows it) or a PEM block."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = serialization.load_der_public_key(
                base64.b64decode("".join(text.split()), validate=True)
            )
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def verify_sendgrid_signature(public_key: str, body: bytes, signature: str, timestamp: str) -> bool:
    """Whether `signature` (base64 DER ECDSA) signs `timestamp` + `body` with SHA-256 under
    SendGrid's Signed Event Webhook verification key."""
    key = _ec_public_key(public_key)
    if key is None:
        return False
    try:
        decoded = base64.b64decode(signature.strip(), validate=True)
        key.verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sendgrid_verification_key(config: ProviderConfig) -> str | None:
    """The Signed Event Webhook verification key of a SendGrid config, when it has one.

    Without one, SendGrid callbacks for that environment are accepted unsigned.
    """
    value = getattr(config, "event_webhook_public_key", None)
    return value if isinstance(value, str) and value.strip() else None


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the URL followed
    by every POST parameter as name + value, sorted by name (then value)."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    # Twilio may sign the URL with or without the default port (twilio-python checks both).
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if not parts.hostname:
        return [url]
    if port is not None:
        without = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
        return [url, urlunsplit(without)]
    default = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]


def verify_twilio_signature(
    auth_token: str, urls: Iterable[str], params: Sequence[tuple[str, str]], signature: str
) -> bool:
    """Whether `signature` matches the callback as Twilio signed it at any of `urls`."""
    given = signature.strip().encode()
    for url in urls:
        for variant in _port_variants(url):
            expected = twilio_signature(auth_token, variant, params).encode()
            if hmac.compare_digest(expected, given):
                return True
    return False


def _provider(
    session: Session, fernet: Fernet, environment_id: str, name: str
) -> ConfiguredProvider | None:
    return next(
        (p for p in configured(session, environment_id, fernet) if p.name == name),
        None,
    )


# SendGrid


@dataclass(frozen=True, slots=True)
class _SendGridEvent:
    kind: str
    event: dict[str, Any]
    delivery: MessageDelivery
    sg_message_id: str | None


def _parse_sendgrid(body: bytes) -> list[Any]:
    try:
        events = json_input.loads(body)
    except json_input.JSONDecodeError as exc:
        raise BadRequest(
            "The request body is not valid JSON. SendGrid's Event Webhook posts a JSON array "
            "of events.",
            code="invalid_json",
        ) from exc
    if not isinstance(events, list):
        raise BadRequest(
            "The body must be a JSON array of events, as SendGrid's Event Webhook posts it.",
            code="invalid_request",
            field="body",
        )
    return events


def _sendgrid_delivery(session: Session, event: dict[str, Any]) -> MessageDelivery | None:
    message_id = event.get("tidings_message_id")
    if isinstance(message_id, str) and message_id:
        delivery = CallbackRepository(session).delivery_of_message(message_id, "email", SENDGRID)
        if delivery is not None:
            return delivery
    sg_message_id = _sg_message_id(event)
    if sg_message_id:
        return MessageRepository(session).delivery_by_provider_id(SENDGRID, sg_message_id)
    return None


def _sg_message_id(event: dict[str, Any]) -> str | None:
    value = event.get("sg_message_id")
    if not isinstance(value, str) or not value:
        return None
    return value.split(".", 1)[0] or None


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    return "" if value is None else str(value)


def _sendgrid_detail(kind: str, event: dict[str, Any]) -> str:
    if kind == "delivered":
        response = _text(event, "response")
        return f"SendGrid delivered: {response}" if response else "SendGrid delivered"
    if kind == "deferred":
        detail = f"SendGrid deferred: {_text(event, 'response') or 'no response given'}"
        attempt = _text(event, "attempt")
        return f"{detail} (attempt {attempt})" if attempt else detail
    label = kind
    if kind == "bounce" and _text(event, "type") and _text(event, "type") != "bounce":
        label = f"bounce ({_text(event, 'type')})"
    reason = _text(event, "reason") or _text(event, "response") or "no reason given"
    status = _text(event, "status")
    return f"SendGrid {label}: {reason}" + (f" ({status})" if status else "")


def _check_sendgrid_signature(
    session: Session,
    fernet: Fernet,
    environment_ids: set[str],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
) -> None:
    for environment_id in sorted(environment_ids):
        provider = _provider(session, fernet, environment_id, SENDGRID)
        key = sendgrid_verification_key(provider.config) if provider else None
        if key is None:
            continue
        if not signature or not timestamp:
            raise Unauthorized(
                f"Missing {SENDGRID_SIGNATURE_HEADER} or {SENDGRID_TIMESTAMP_HEADER}: the "
                "SendGrid provider has a verification key, so events must come from SendGrid's "
                "Signed Event Webhook. Turn on signing in SendGrid's Event Webhook settings.",
                code="missing_signature",
                field=SENDGRID_SIGNATURE_HEADER,
            )
        if not verify_sendgrid_signature(key, body, signature, timestamp):
            raise Unauthorized(
                f"The {SENDGRID_SIGNATURE_HEADER} header does not verify with the SendGrid "
                "provider's verification key. Copy the current key from SendGrid's Event "
                "Webhook settings into the provider config.",
                code="invalid_signature",
                field=SENDGRID_SIGNATURE_HEADER,
            )


def handle_sendgrid_events(
    session: Session,
    fernet: Fernet,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
) -> CallbackResult:
    """Apply one Event Webhook post: every event or none (when a signature fails, 401)."""
    events = _parse_sendgrid(body)
    found: list[_SendGridEvent] = []
    ignored = unknown = 0
    for event in events:
        kind = event.get("event") if isinstance(event, dict) else None
        if not isinstance(kind, str) or (
            kind not in SENDGRID_OUTCOMES and kind not in SENDGRID_RECORDED
        ):
            ignored += 1
            continue
        assert isinstance(event, dict)
        delivery = _sendgrid_delivery(session, event)
        if delivery is None:
            unknown += 1
            continue
        found.append(_SendGridEvent(kind, event, delivery, _sg_message_id(event)))
    environment_ids = {item.delivery.environment_id for item in found}
    _check_sendgrid_signature(session, fernet, environment_ids, body, signature, timestamp)
    applied = duplicates = recorded = 0
    for item in found:
        detail = _sendgrid_detail(item.kind, item.event)
        outcome = SENDGRID_OUTCOMES.get(item.kind)
        if outcome is None:
            if record_provider_status(session, item.delivery, item.kind, detail, item.event):
                recorded += 1
            else:
                duplicates += 1
        elif apply_delivery_status(
            session,
            item.delivery,
            outcome,
            detail,
            item.event,
            provider_message_id=item.sg_message_id,
        ):
            applied += 1
        else:
            duplicates += 1
    return CallbackResult(
        received=len(events),
        applied=applied,
        duplicates=duplicates,
        recorded=recorded,
        ignored=ignored,
        unknown=unknown,
    )


# Twilio


def _twilio_detail(status: str, values: dict[str, str]) -> str:
    detail = f"Twilio {status or 'status'}"
    code = values.get("ErrorCode")
    message = values.get("ErrorMessage")
    if code:
        detail += f": error {code}"
        if message:
            detail += f" ({message})"
    elif message:
        detail += f": {message}"
    return detail


def handle_twilio_status(
    session: Session,
    fernet: Fernet,
    urls: Sequence[str],
    params: Sequence[tuple[str, str]],
    signature: str | None,
    tidings_message_id: str | None = None,
) -> CallbackResult:
    """Apply one Twilio status callback, signed for one of `urls` (403 otherwise)."""
    values = dict(params)
    sid = values.get("MessageSid") or values.get("SmsSid")
    if not sid:
        raise BadRequest(
            "MessageSid is missing: Twilio status callbacks post it form-encoded with "
            "MessageStatus.",
            code="invalid_request",
            field="MessageSid",
        )
    delivery = None
    if tidings_message_id:
        delivery = CallbackRepository(session).delivery_of_message(
            tidings_message_id, "sms", TWILIO
        )
    if delivery is None:
        delivery = MessageRepository(session).delivery_by_provider_id(TWILIO, sid)
    if delivery is None:
        return CallbackResult(received=1, applied=0, duplicates=0, recorded=0, ignored=0, unknown=1)
    provider = _provider(session, fernet, delivery.environment_id, TWILIO)
    if provider is None or not isinstance(provider.config, TwilioConfig):
        raise Forbidden(
            "No Twilio provider is configured in the message's environment, so this callback's "
            f"{TWILIO_SIGNATURE_HEADER} cannot be checked. Configure Twilio with its auth token.",
            code="invalid_signature",
            field=TWILIO_SIGNATURE_HEADER,
        )
    config = provider.config
    candidates = list(urls)
    if config.status_callback_url:
        # The provider sends StatusCallback as the configured URL plus the message id.
        configured = config.status_callback_url
        if tidings_message_id:
            separator = "&" if "?" in configured else "?"
            configured += f"{separator}{urlencode({'tidings_message_id': tidings_message_id})}"
        candidates.append(configured)
    if not signature or not verify_twilio_signature(
        config.auth_token.get_secret_value(), candidates, params, signature
    ):
        raise Forbidden(
            f"The {TWILIO_SIGNATURE_HEADER} header is missing or does not match this callback "
            "signed with the Twilio auth token of the message's environment. Behind a proxy, "
            "forward X-Forwarded-Proto and X-Forwarded-Host, or set the provider's status "
            "callback URL to the exact URL Twilio calls.",
            code="invalid_signature",
            field=TWILIO_SIGNATURE_HEADER,
        )
    status = values.get("MessageStatus") or values.get("SmsStatus") or ""
    detail = _twilio_detail(status, values)
    raw = {name: value for name, value in values.items() if name != "Body"}
    outcome = TWILIO_OUTCOMES.get(status)
    applied = duplicates = recorded = 0
    if outcome is not None:
        if apply_delivery_status(session, delivery, outcome, detail, raw, provider_message_id=sid):
            applied = 1
        else:
            duplicates = 1
    elif record_provider_status(session, delivery, status or "unknown", detail, raw):
        recorded = 1
    else:
        duplicates = 1
    return CallbackResult(
        received=1,
        applied=applied,
        duplicates=duplicates,
        recorded=recorded,
        ignored=0,
        unknown=0,
    )
