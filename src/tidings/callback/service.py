"""Delivery-status callbacks: what a vendor's report does to a delivery and its message.

The vendor's own format is its provider's business (`Provider.parse_status_callback` and
`verify_status_callback`, in `provider/email/sendgrid.py` and `provider/sms/twilio.py`). Here,
for every vendor:
1. the provider turns the request into `StatusReport`s (400 when it is not what the vendor
   sends); reports Tidings does not track are counted as ignored;
2. each report's delivery is found on the provider's channel, by the Tidings message id the
   vendor echoed back, or else by the provider message id recorded when sending; reports for
   unknown messages are counted and otherwise ignored (answered 200), so vendors do not retry
   them forever;
3. the provider checks the vendor's signature with its config in the environment of every
   delivery found (the environment is the delivery's; no API key): one failure refuses the
   whole request, before anything is written;
4. each report is applied once: final outcomes by `apply_delivery_status`, intermediate
   statuses by `record_provider_status`. A report already applied changes and records
   nothing (a duplicate).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.callback.repository import CallbackRepository
from tidings.callback.schemas import CallbackResult
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import DeliveryStatus, Message, MessageDelivery, MessageStatus
from tidings.provider.base import (
    EXCERPT_LIMIT,
    Provider,
    ReportOutcome,
    StatusCallback,
    StatusReport,
)
from tidings.provider.service import ConfiguredProvider, configured

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
    outcome: Literal[ReportOutcome.DELIVERED, ReportOutcome.UNDELIVERABLE],
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
    delivered = outcome is ReportOutcome.DELIVERED
    if delivery.status == (DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED):
        return False
    if not delivered and delivery.status == DeliveryStatus.DELIVERED:
        return _record_bounce_after_delivery(repository, message, delivery, detail, raw)
    if provider_message_id and not delivery.provider_message_id:
        delivery.provider_message_id = provider_message_id
    now = utcnow()
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
    if delivered:
        _mark_delivered(repository, message, delivery, entry, now)
    else:
        _mark_failed(repository, message, delivery, entry, now)
    return True


def _record_bounce_after_delivery(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    detail: str,
    raw: dict[str, Any],
) -> bool:
    """A failure reported after delivery: recorded once, and nothing moves."""
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


def _mark_delivered(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    entry: dict[str, Any],
    now: datetime,
) -> None:
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


def _mark_failed(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    entry: dict[str, Any],
    now: datetime,
) -> None:
    detail = entry["detail"]
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


@dataclass(frozen=True, slots=True)
class _Found:
    report: StatusReport
    delivery: MessageDelivery


def handle_status_callback(
    session: Session, fernet: Fernet, provider: type[Provider[Any]], callback: StatusCallback
) -> CallbackResult:
    """Apply one callback of `provider`'s vendor: every report in it, or none (when a
    signature fails)."""
    reports = provider.parse_status_callback(callback)
    found: list[_Found] = []
    counts: Counter[str] = Counter()
    for report in reports:
        if report.outcome is ReportOutcome.IGNORED:
            counts["ignored"] += 1
            continue
        delivery = _delivery(session, provider, report)
        if delivery is None:
            counts["unknown"] += 1
            continue
        found.append(_Found(report, delivery))
    for environment_id in sorted({item.delivery.environment_id for item in found}):
        configured_provider = _configured(session, fernet, environment_id, provider.name)
        config = configured_provider.config if configured_provider is not None else None
        provider.verify_status_callback(config, callback)
    for item in found:
        counts[_apply(session, item)] += 1
    return CallbackResult(
        received=len(reports),
        applied=counts["applied"],
        duplicates=counts["duplicates"],
        recorded=counts["recorded"],
        ignored=counts["ignored"],
        unknown=counts["unknown"],
    )


def _delivery(
    session: Session, provider: type[Provider[Any]], report: StatusReport
) -> MessageDelivery | None:
    """The delivery a report is about: by the Tidings message id on the provider's channel,
    or else by the provider's message id."""
    if report.tidings_message_id:
        delivery = CallbackRepository(session).delivery_of_message(
            report.tidings_message_id, provider.channel, provider.name
        )
        if delivery is not None:
            return delivery
    if report.provider_message_id:
        return MessageRepository(session).delivery_by_provider_id(
            provider.name, report.provider_message_id
        )
    return None


def _configured(
    session: Session, fernet: Fernet, environment_id: str, name: str
) -> ConfiguredProvider | None:
    return next(
        (p for p in configured(session, environment_id, fernet) if p.name == name),
        None,
    )


def _apply(session: Session, item: _Found) -> Literal["applied", "recorded", "duplicates"]:
    report = item.report
    if report.outcome is ReportOutcome.INTERMEDIATE:
        written = record_provider_status(
            session, item.delivery, report.status, report.detail, report.raw
        )
        return "recorded" if written else "duplicates"
    assert report.outcome is not ReportOutcome.IGNORED
    written = apply_delivery_status(
        session,
        item.delivery,
        report.outcome,
        report.detail,
        report.raw,
        provider_message_id=report.provider_message_id,
    )
    return "applied" if written else "duplicates"
