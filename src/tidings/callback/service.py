"""Delivery-status callbacks: what a vendor's report does to a delivery and its message.

The vendor's own format is its provider's business (`Provider.parse_status_callback` and
`verify_status_callback`, in each vendor's module under `provider/`). Here, for every vendor:
1. the provider turns the request into `StatusReport`s (400 when it is not what the vendor
   sends); reports Tidings does not track are counted as ignored;
2. each report's delivery is found on the provider's channel, by the Tidings message id the
   vendor echoed back, or else by the provider message id recorded when sending; reports for
   unknown messages are counted and otherwise ignored (answered 200), so vendors do not retry
   them forever;
3. the provider checks the vendor's signature with its config in the environment of every
   delivery found (the environment is the delivery's; no API key): one failure refuses the
   whole request, before anything is written. Steps 1 to 3 run in a read transaction
   (`check_status_callback`), as checking may go over the network (an SNS certificate);
4. in a write transaction (`apply_status_callback`), each report is applied once
   (`apply_report`): it moves the delivery and its message up
   `models.message.FEEDBACK_LADDER` (DELIVERED < OPENED < CLICKED < BOUNCED < COMPLAINED),
   never down, and goes into the history with the vendor's words. A report already applied
   changes and records nothing (a duplicate); one that arrives after a stronger one (a
   DELIVERED after BOUNCED) is recorded once, `late`, and moves nothing. Each report also
   feeds the suppression list (`suppression.service.apply_feedback`): a hard bounce or a
   complaint suppresses the address the delivery went to, soft bounces in a row do at
   `TIDINGS_SOFT_BOUNCE_LIMIT`, and a delivery ends the row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.analytics.repository import MetricRepository, dimensions
from tidings.callback.repository import CallbackRepository
from tidings.callback.schemas import CallbackResult
from tidings.config import Settings
from tidings.db import Outbox
from tidings.errors import AppError, Forbidden, Unauthorized
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import (
    DeliveryStatus,
    Message,
    MessageDelivery,
    MessageEvent,
    MessageStatus,
    Metric,
)
from tidings.models.message import feedback_rank, moves_up
from tidings.observability import metrics, tracing
from tidings.provider.base import (
    EXCERPT_LIMIT,
    Provider,
    ReportOutcome,
    StatusCallback,
    StatusReport,
)
from tidings.provider.service import ConfiguredProvider, configs_everywhere, configured
from tidings.suppression.service import apply_feedback
from tidings.webhook_out import service as webhooks
from tidings.webhook_out.events import REPORTED, Emission, message_data

BOUNCED = "BOUNCED"
PROVIDER_STATUS = "PROVIDER_STATUS"

# The history entry, and the status of the delivery and of the message, each final report
# leads to.
_REPORTED = {
    ReportOutcome.DELIVERED: MessageStatus.DELIVERED,
    ReportOutcome.OPENED: MessageStatus.OPENED,
    ReportOutcome.CLICKED: MessageStatus.CLICKED,
    ReportOutcome.BOUNCED: MessageStatus.BOUNCED,
    ReportOutcome.COMPLAINED: MessageStatus.COMPLAINED,
    ReportOutcome.UNDELIVERABLE: MessageStatus.UNDELIVERABLE,
}
# Engagement: each open and click is its own event (told apart by the vendor's event id).
_ENGAGEMENT = frozenset({ReportOutcome.OPENED, ReportOutcome.CLICKED})
# The reports the suppression list hears of.
_SUPPRESSION_FEEDBACK = frozenset(
    {ReportOutcome.DELIVERED, ReportOutcome.BOUNCED, ReportOutcome.COMPLAINED}
)
DEFAULT_SOFT_BOUNCE_LIMIT: int = Settings.model_fields["soft_bounce_limit"].default


def _excerpt(raw: dict[str, Any]) -> str:
    return orjson.dumps(raw, default=str).decode()[:EXCERPT_LIMIT]


def _lock(session: Session, delivery_id: int) -> tuple[MessageDelivery, Message]:
    # The pipeline's order: the delivery, then its message.
    repository = MessageRepository(session)
    locked = repository.lock_delivery(delivery_id)
    assert locked is not None
    message = repository.lock_by_pk(locked.message_pk)
    assert message is not None
    return locked, message


def _same_event(event: MessageEvent, delivery: MessageDelivery, report: StatusReport) -> bool:
    """Whether a history entry records this report already: the same kind of report on the
    same delivery, and for an open or click the same vendor event (or the same words, when
    the vendor gives no event id); for a bounce, the same kind of bounce."""
    data = event.data
    if (
        event.type != _REPORTED[report.outcome]
        or data.get("channel") != delivery.channel
        or data.get("provider") != delivery.provider
    ):
        return False
    if report.outcome in _ENGAGEMENT:
        if report.event_id:
            return bool(data.get("event_id") == report.event_id)
        return bool(data.get("detail") == report.detail)
    if report.outcome is ReportOutcome.BOUNCED:
        return bool(data.get("bounce") == report.bounce)
    return True


Applied = Literal["applied", "recorded", "duplicates"]


def apply_report(
    session: Session,
    outbox: Outbox,
    delivery_id: int,
    report: StatusReport,
    *,
    soft_bounce_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
) -> Applied:
    """Apply a vendor's report (any outcome but INTERMEDIATE and IGNORED) on one delivery:
    "applied" when it moved the delivery, "recorded" when it was only written to the history,
    "duplicates" when the history had it already.

    Locks the delivery, then its message, as the pipeline does. Idempotent: a report the
    history already has (`_same_event`) changes and records nothing. Otherwise it is recorded
    (type DELIVERED, OPENED, CLICKED, BOUNCED, COMPLAINED or UNDELIVERABLE, with channel,
    provider, the vendor's `detail`, its `facts`, `bounce` and `event_id`, and an excerpt of
    the callback), and:
    - it moves the delivery when `moves_up` (UNDELIVERABLE: when the delivery is below the
      ladder: it becomes `failed`); a report that moves nothing is marked `late`;
    - it moves the message when `moves_up` too, except that BOUNCED and UNDELIVERABLE move
      it only once no other delivery of the message got through (all failed or bounced):
      BOUNCED with reason BOUNCED and the vendor's words, UNDELIVERABLE with reason BOUNCED
      unless the message is already final. DELIVERED and engagement set `delivered_at`.
    - a machine's open or click (`report.machine`: Tidings' own tracking) is recorded with
      `machine: true` and moves nothing, `opened_at` and `clicked_at` included;
    - a delivery still `sending` (the report beat the pipeline's SENT commit) is updated all
      the same; the report's provider message id fills the delivery's when it has none yet.

    Hard bounces and complaints are the reports that say "do not send here again": they
    reach the history as BOUNCED (`bounce: hard`) and COMPLAINED, and put the address the
    delivery went to on the suppression list, late or not; soft bounces count towards
    `soft_bounce_limit` in a row, which a delivery ends (`suppression.service`).

    A report applied, or an open or click recorded, is also an outbound webhook event
    (`message.delivered`, `message.opened`, …; webhook_out.events.REPORTED), its deliveries
    inserted here and dispatched through `outbox` after the commit.
    """
    delivery, message = _lock(session, delivery_id)
    if tracing.enabled:
        return tracing.traced(
            "delivery event",
            lambda: _apply_locked(session, outbox, delivery, message, report, soft_bounce_limit),
            lambda applied: {"applied": applied, "status": message.status},
            parent=tracing.stored(message.source),
            attributes={
                "message_id": message.message_id,
                "provider": delivery.provider,
                "channel": delivery.channel,
                "report": str(report.outcome),
                "machine": report.machine,
            },
        )
    return _apply_locked(session, outbox, delivery, message, report, soft_bounce_limit)


def _apply_locked(
    session: Session,
    outbox: Outbox,
    delivery: MessageDelivery,
    message: Message,
    report: StatusReport,
    soft_bounce_limit: int,
) -> Applied:
    repository = MessageRepository(session)
    if any(_same_event(event, delivery, report) for event in repository.history(message)):
        return "duplicates"
    if report.outcome in _SUPPRESSION_FEEDBACK:
        apply_feedback(
            session,
            message,
            delivery.channel,
            message.output.get("recipient") or {},
            outcome=str(report.outcome),
            bounce=str(report.bounce) if report.bounce is not None else None,
            provider=delivery.provider,
            detail=report.detail,
            soft_bounce_limit=soft_bounce_limit,
        )
    reported = _REPORTED[report.outcome]
    if report.outcome is ReportOutcome.UNDELIVERABLE:
        moves = feedback_rank(delivery.status) < 0
    else:
        moves = moves_up(delivery.status, reported)
    if report.provider_message_id and not delivery.provider_message_id:
        delivery.provider_message_id = report.provider_message_id
    entry = _history_entry(delivery, report)
    now = utcnow()
    counted: list[str] = []
    if report.machine:
        # A machine's open or click (a privacy proxy, a link scanner) says nothing of the
        # recipient: in the history, and nowhere else.
        moves = False
    else:
        counted += _first_engagement(message, report, now)
    if moves:
        counted.extend(_metrics_of_move(delivery.status, reported))
    _count(session, message, delivery, counted, now)
    if not moves:
        late = report.outcome not in _ENGAGEMENT
        repository.record(message, reported, **entry, **({"late": True} if late else {}))
        if not late:
            _emit(session, outbox, message, delivery, reported, report)
        return "recorded"
    undeliverable = reported == MessageStatus.UNDELIVERABLE
    delivery.status = DeliveryStatus.FAILED if undeliverable else reported.lower()
    delivery.sending_since = None
    delivery.next_attempt_at = None
    delivery.updated_at = now
    failed = reported in (MessageStatus.BOUNCED, MessageStatus.UNDELIVERABLE)
    delivery.error = report.detail if failed else None
    repository.record(message, reported, **entry)
    _move_message(repository, message, delivery, reported, report.detail, now)
    _emit(session, outbox, message, delivery, reported, report)
    metrics.message_outcome(reported, delivery.provider)
    return "applied"


def _history_entry(delivery: MessageDelivery, report: StatusReport) -> dict[str, Any]:
    """What the message's history records of a report."""
    entry: dict[str, Any] = {
        "channel": delivery.channel,
        "provider": delivery.provider,
        "provider_message_id": delivery.provider_message_id,
        "detail": report.detail,
        **report.facts,
    }
    if report.bounce is not None:
        entry["bounce"] = str(report.bounce)
    if report.event_id:
        entry["event_id"] = report.event_id
    if report.machine is not None:
        entry["machine"] = report.machine
    if report.raw:
        entry["callback"] = _excerpt(report.raw)
    if report.outcome in (ReportOutcome.BOUNCED, ReportOutcome.UNDELIVERABLE):
        entry = {"reason": BOUNCED, **entry}
    return entry


def _first_engagement(message: Message, report: StatusReport, now: datetime) -> list[str]:
    """Courier's `opened` and `clicked`: the first of each is kept, whether or not it moved
    the message, and is the one the metrics count (unique opens and clicks)."""
    if report.outcome is ReportOutcome.OPENED:
        counted = [] if message.opened_at is not None else [Metric.OPENED]
        message.opened_at = message.opened_at or now
        return counted
    if report.outcome is ReportOutcome.CLICKED:
        counted = [] if message.clicked_at is not None else [Metric.CLICKED]
        message.clicked_at = message.clicked_at or now
        return counted
    return []


def _metrics_of_move(current: str, reported: str) -> list[str]:
    """What a delivery's move from `current` to `reported` counts in the metrics: delivered
    once per delivery, when it first reaches the ladder at DELIVERED or by a person's open or
    click (which prove delivery); bounced and complained when it moves to either."""
    if reported in (MessageStatus.BOUNCED, MessageStatus.COMPLAINED):
        return [reported.lower()]
    if feedback_rank(reported) >= 0 and feedback_rank(current) < 0:
        return [Metric.DELIVERED]
    return []


def _count(
    session: Session,
    message: Message,
    delivery: MessageDelivery,
    metrics: list[str],
    now: datetime,
) -> None:
    if not metrics:
        return
    template, automation = dimensions(message)
    repository = MetricRepository(session)
    for metric in metrics:
        repository.count(
            message.environment_id, now, template, automation, delivery.channel, metric
        )


def _emit(
    session: Session,
    outbox: Outbox,
    message: Message,
    delivery: MessageDelivery,
    reported: str,
    report: StatusReport,
) -> None:
    """The report's outbound webhook event, when its status is one (not UNDELIVERABLE)."""
    event_type = REPORTED.get(reported)
    if event_type is None:
        return
    data = message_data(
        message.message_id,
        reported,
        message.recipient,
        delivery.channel,
        delivery.provider,
        delivery.provider_message_id,
        detail=report.detail or None,
        bounce=str(report.bounce) if report.bounce is not None else None,
    )
    webhooks.emit(session, outbox, Emission(delivery.environment_id, event_type, data))


def _move_message(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    reported: str,
    detail: str,
    now: datetime,
) -> None:
    if reported in (MessageStatus.BOUNCED, MessageStatus.UNDELIVERABLE):
        others = [d for d in repository.deliveries(message) if d.id != delivery.id]
        if any(d.status not in DeliveryStatus.NOT_DELIVERED for d in others):
            return  # another channel got through
        if reported == MessageStatus.UNDELIVERABLE and message.status in MessageStatus.FINAL:
            return
        if reported == MessageStatus.BOUNCED and not moves_up(message.status, reported):
            return
        message.status = reported
        message.reason = BOUNCED
        message.reason_detail = detail
        message.updated_at = now
        return
    if not moves_up(message.status, reported):
        return
    message.status = reported
    message.reason = None
    message.reason_detail = None
    message.sent_at = message.sent_at or now
    if reported != MessageStatus.COMPLAINED:
        message.delivered_at = message.delivered_at or now
    message.updated_at = now


def record_provider_status(
    session: Session, delivery_id: int, status: str, detail: str, raw: dict[str, Any]
) -> bool:
    """Record an intermediate vendor status (PROVIDER_STATUS) once; the state stays as it is.

    Returns False when the same status with the same detail is already in the history.
    """
    repository = MessageRepository(session)
    delivery, message = _lock(session, delivery_id)
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
class CheckedCallback:
    """A callback parsed, its deliveries found and its signature checked: what
    `apply_status_callback` writes. `done` is the whole answer when there is nothing to
    write (a subscription confirmed)."""

    received: int = 0
    found: tuple[tuple[StatusReport, int], ...] = ()
    ignored: int = 0
    unknown: int = 0
    done: CallbackResult | None = None


def check_status_callback(
    session: Session, fernet: Fernet, provider: type[Provider[Any]], callback: StatusCallback
) -> CheckedCallback:
    """Steps 1 to 3, in a read transaction (no write lock held): checking a signature may
    fetch a certificate, and a subscription is confirmed with the vendor, over the network.
    Raises when the request is malformed or does not verify."""
    topic = provider.subscription_request(callback)
    if topic is not None:
        return CheckedCallback(
            done=_confirm_subscription(session, fernet, provider, callback, topic)
        )
    reports = provider.parse_status_callback(callback)
    found: list[tuple[StatusReport, MessageDelivery]] = []
    ignored = unknown = 0
    for report in reports:
        if report.outcome is ReportOutcome.IGNORED:
            ignored += 1
            continue
        delivery = _delivery(session, provider, report)
        if delivery is None:
            unknown += 1
            continue
        found.append((report, delivery))
    for environment_id in sorted({delivery.environment_id for _, delivery in found}):
        configured_provider = _configured(session, fernet, environment_id, provider.name)
        config = configured_provider.config if configured_provider is not None else None
        provider.verify_status_callback(config, callback)
    return CheckedCallback(
        received=len(reports),
        found=tuple((report, delivery.id) for report, delivery in found),
        ignored=ignored,
        unknown=unknown,
    )


def apply_status_callback(
    session: Session,
    outbox: Outbox,
    checked: CheckedCallback,
    *,
    soft_bounce_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
) -> CallbackResult:
    """Step 4, in a write transaction: apply each report of a checked callback once (the
    outbound webhooks it makes go to `outbox`)."""
    if checked.done is not None:
        return checked.done
    counts: Counter[str] = Counter()
    for report, delivery_id in checked.found:
        counts[_apply(session, outbox, report, delivery_id, soft_bounce_limit)] += 1
    return CallbackResult(
        received=checked.received,
        applied=counts["applied"],
        duplicates=counts["duplicates"],
        recorded=counts["recorded"],
        ignored=checked.ignored,
        unknown=checked.unknown,
    )


def _confirm_subscription(
    session: Session,
    fernet: Fernet,
    provider: type[Provider[Any]],
    callback: StatusCallback,
    topic: str,
) -> CallbackResult:
    """A subscription request, confirmed with the vendor once one environment's config of
    the provider expects it and it verifies (the error of the last one that refused it
    otherwise)."""
    refusal: AppError = Unauthorized(
        f"No {provider.display_name} provider in any environment expects {topic!r}. Set it "
        "in the provider config of the environment that sends through it.",
        code="callback_not_configured",
    )
    for config in configs_everywhere(session, provider.name, fernet):
        try:
            provider.confirm_subscription(config, callback)
        except (Unauthorized, Forbidden) as exc:
            refusal = exc
            continue
        return CallbackResult(
            received=1, applied=0, duplicates=0, recorded=0, ignored=0, unknown=0, subscribed=1
        )
    raise refusal


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


def _apply(
    session: Session,
    outbox: Outbox,
    report: StatusReport,
    delivery_id: int,
    soft_bounce_limit: int,
) -> Applied:
    if report.outcome is ReportOutcome.INTERMEDIATE:
        written = record_provider_status(
            session, delivery_id, report.status, report.detail, report.raw
        )
        return "recorded" if written else "duplicates"
    assert report.outcome is not ReportOutcome.IGNORED
    return apply_report(session, outbox, delivery_id, report, soft_bounce_limit=soft_bounce_limit)
