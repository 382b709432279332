"""Send API rules: accepting a send, cancelation, resending, and the log views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from tidings.errors import BadRequest, Conflict, found
from tidings.kit.ids import new_id
from tidings.kit.missing import Missing
from tidings.kit.time import (
    EARLIEST,
    LATEST,
    epoch_ms,
    from_epoch_ms,
    parse_timestamp,
    shifted,
    utcnow,
)
from tidings.kit.windows import (
    Window,
    WindowError,
    next_opening,
    parse_opening_hours,
    parse_window,
    window_zone,
    zone_named,
)
from tidings.message.recipients import Recipient, expand
from tidings.message.repository import MessageRepository, NewHistory
from tidings.message.schemas import MessageSpec, MessageView, ProviderDetail
from tidings.models import (
    DeliveryStatus,
    Message,
    MessageDelivery,
    MessageStatus,
    SuppressionReason,
)
from tidings.notification.repository import NotificationRepository
from tidings.notification.service import not_found as template_not_found
from tidings.observability import tracing
from tidings.profile.repository import ProfileRepository
from tidings.template.elemental import ContentError, validate_content
from tidings.template.render import syntax_problem
from tidings.workspace.service import Scope

_missing_message = Missing(
    "message", "GET /messages lists them.", code="message_not_found", field="message_id"
)

_DURATION = TypeAdapter(timedelta)


class AcceptedMessage(NamedTuple):
    """A message `accept_send` created: what its caller schedules and answers with."""

    message_id: str
    send_at: datetime | None


def _epoch_ms(value: datetime | None) -> int | None:
    return epoch_ms(value) if value else None


def schedule_time(value: str | int, field: str) -> datetime:
    """A send time given as an ISO-8601 string or epoch milliseconds; a 400 naming `field`
    when it is neither, or out of range."""
    parsed = from_epoch_ms(value) if isinstance(value, int) else parse_timestamp(value)
    if parsed is None:
        raise BadRequest(
            f"{field}: {value!r} is not a time Tidings can schedule: give an ISO-8601 time "
            f"such as 2030-01-01T09:00:00Z, or epoch milliseconds, from {EARLIEST:%Y} up to "
            f"{LATEST:%Y}.",
            code="invalid_time",
            field=field,
        )
    return parsed


def _after(now: datetime, duration: timedelta, field: str) -> datetime:
    later = shifted(now, duration)
    if later is None:
        raise BadRequest(
            f"{field}: {duration} from now is past {LATEST:%Y}. Give a shorter duration.",
            code="invalid_duration",
            field=field,
        )
    return later


def _duration(value: str | int, field: str) -> timedelta:
    try:
        if isinstance(value, int):
            return timedelta(milliseconds=value)
        return _DURATION.validate_python(value)
    except (ValidationError, OverflowError) as exc:
        raise BadRequest(
            f"{field}: {value!r} is not a duration: give milliseconds or ISO-8601 like PT1H.",
            code="invalid_duration",
            field=field,
        ) from exc


def _validate(session: Session, scope: Scope, spec: MessageSpec) -> None:
    if spec.template and spec.content:
        raise BadRequest(
            "Give either `message.template` or `message.content`, not both.",
            code="invalid_message",
            field="message.template",
        )
    if not spec.template and not spec.content:
        raise BadRequest(
            "The message needs `template` (a notification id) or `content` "
            '(e.g. {"title": "Hi", "body": "…"}).',
            code="invalid_message",
            field="message.content",
        )
    if spec.template and not NotificationRepository(session).exists(scope, spec.template):
        raise template_not_found(spec.template)
    if spec.content is not None:
        try:
            validate_content(spec.content, "message.content")
            problem = syntax_problem(spec.content, "message.content")
            if problem is not None:
                raise ContentError(*problem)
        except ContentError as exc:
            raise BadRequest(
                f"{exc.path}: {exc.reason}.", code="invalid_content", field=exc.path
            ) from exc


def _metadata(spec: MessageSpec) -> dict[str, Any]:
    metadata = spec.metadata.model_dump(exclude_none=True)
    preferences = (spec.model_extra or {}).get("preferences")
    if isinstance(preferences, dict) and preferences.get("subscription_topic_id"):
        metadata["subscription_topic_id"] = str(preferences["subscription_topic_id"])
    return metadata


def accept_send(
    session: Session,
    scope: Scope,
    spec: MessageSpec,
    *,
    message_timeout: timedelta,
    source: dict[str, Any] | None = None,
) -> tuple[str, list[AcceptedMessage]]:
    """Create one ENQUEUED (or DELAYED) message per recipient; returns the requestId and
    the new messages."""
    _validate(session, scope, spec)
    recipients = expand(session, scope.environment_id, spec.to)
    return accept_recipients(
        session, scope, spec, recipients, message_timeout=message_timeout, source=source
    )


def accept_recipients(
    session: Session,
    scope: Scope,
    spec: MessageSpec,
    recipients: list[Recipient],
    *,
    message_timeout: timedelta,
    source: dict[str, Any] | None = None,
    message_ids: list[str] | None = None,
    request_id: str | None = None,
) -> tuple[str, list[AcceptedMessage]]:
    """`accept_send` for recipients already expanded from `spec.to` and a `spec` already
    validated: a broadcast's chunk passes its own members, message ids and request id."""
    now = utcnow()
    send_at, expires_at = _send_window(spec, now)
    window = _delay_window(spec)
    send_ats = [
        _window_opening(session, scope, window, send_at or now, recipient)
        if window is not None
        else send_at
        for recipient in recipients
    ]
    if message_ids is None:
        message_ids = [new_id("msg") for _ in recipients]
    if request_id is None:
        request_id = message_ids[0] if len(message_ids) == 1 else new_id("req")
    shared: dict[str, Any] = {
        "workspace_id": scope.workspace_id,
        "environment_id": scope.environment_id,
        "request_id": request_id,
        "expires_at": expires_at,
        "timeout_at": now + message_timeout,
        "enqueued_at": now,
        "updated_at": now,
    }
    rows = [
        {
            **_message_row(spec, shared, message_id, recipient, source),
            # Each recipient's own: a delivery window opens in the recipient's zone.
            "status": MessageStatus.DELAYED if _later(at, now) else MessageStatus.ENQUEUED,
            "send_at": at,
        }
        for recipient, message_id, at in zip(recipients, message_ids, send_ats, strict=True)
    ]
    enqueued = {"request_id": request_id}
    history = [NewHistory(message_id, "ENQUEUED", enqueued) for message_id in message_ids]
    history += [
        NewHistory(message_id, "DELAYED", {"until": at.isoformat()})
        for message_id, at in zip(message_ids, send_ats, strict=True)
        if at is not None and _later(at, now)
    ]
    MessageRepository(session).add_messages(rows, history)
    accepted = zip(message_ids, send_ats, strict=True)
    return request_id, [AcceptedMessage(message_id, at) for message_id, at in accepted]


def _send_window(spec: MessageSpec, now: datetime) -> tuple[datetime | None, datetime | None]:
    """When to send the message (its delay) and when it expires (its expiry), if ever."""
    delay, expiry = spec.delay, spec.expiry
    send_at = expires_at = None
    if delay is not None:
        send_at = _time(
            now,
            None if _is_window(delay.until) else delay.until or None,
            "message.delay.until",
            delay.duration,
            "message.delay.duration",
        )
    if expiry is not None:
        expires_at = _time(
            now,
            expiry.expires_at,
            "message.expiry.expires_at",
            expiry.expires_in,
            "message.expiry.expires_in",
        )
    return send_at, expires_at


def _later(at: datetime | None, now: datetime) -> bool:
    return at is not None and at > now


def _is_window(until: str | None) -> bool:
    """Whether a `delay.until` is a delivery window ("Mo-Fr 09:00-18:00") rather than a time:
    whatever is no time is read as a window, and refused as one."""
    return bool(until) and parse_timestamp(until or "") is None


def _delay_window(spec: MessageSpec) -> Window | None:
    """The delivery window of `message.delay` (its `until` in opening-hours form, or its
    `window`), with `delay.timezone` as its zone when the window names none."""
    delay = spec.delay
    if delay is None:
        return None
    if delay.timezone is not None and zone_named(delay.timezone) is None:
        raise BadRequest(
            f"message.delay.timezone: {delay.timezone!r} is not an IANA time zone; give one "
            'such as "Europe/Paris", or leave it out for the recipient\'s.',
            code="invalid_window",
            field="message.delay.timezone",
        )
    if delay.window is not None and _is_window(delay.until):
        raise BadRequest(
            "message.delay.window: give the window either as `until` (opening hours) or as "
            "`window`, not both.",
            code="invalid_window",
            field="message.delay.window",
        )
    try:
        if delay.window is not None:
            field = "message.delay.window"
            window = parse_window(delay.window)
        elif _is_window(delay.until):
            field = "message.delay.until"
            window = parse_opening_hours(delay.until or "")
        else:
            return None
    except WindowError as exc:
        more = (
            " (`until` is an ISO-8601 time such as 2030-01-01T09:00:00Z, or a delivery window)"
            if field.endswith("until")
            else ""
        )
        raise BadRequest(
            f"{field}{exc.at}: {exc.reason}{more}.",
            # An `until` that is neither a time nor a window keeps the code it always had.
            code="invalid_time" if more else "invalid_window",
            field=f"{field}{exc.at}",
        ) from exc
    if window.timezone is None and delay.timezone is not None:
        window = Window(window.spans, delay.timezone, window.fallback_timezone)
    return window


def _window_opening(
    session: Session, scope: Scope, window: Window, after: datetime, recipient: Recipient
) -> datetime:
    """When the recipient's window opens at or after `after`, in the recipient's zone: its
    stored profile's, with what the send's `to` gives laid over it."""
    profile: dict[str, Any] = {}
    if recipient.user_id is not None and window.timezone is None:
        stored = ProfileRepository(session).get(scope, recipient.user_id)
        profile = dict(stored.data) if stored is not None else {}
    profile.update(recipient.to)
    zone, _ = window_zone(window, profile)
    return next_opening(after, window, zone)


def _time(
    now: datetime, at: str | int | None, at_field: str, after: str | int | None, after_field: str
) -> datetime | None:
    """A time given either as one (`at`) or as a duration from `now` (`after`); None when
    neither is given."""
    if at is not None:
        return schedule_time(at, at_field)
    if after is not None:
        return _after(now, _duration(after, after_field), after_field)
    return None


def _message_row(
    spec: MessageSpec,
    shared: dict[str, Any],
    message_id: str,
    recipient: Recipient,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    """One recipient's message row: what every message of the send shares, and its own."""
    row = {
        **shared,
        "message_id": message_id,
        "recipient": recipient.user_id,
        "to": recipient.to,
        "notification_id": spec.template,
        "content": spec.content,
        "data": spec.data,
        "routing": spec.routing.model_dump() if spec.routing else None,
        "channels": spec.channels,
        "providers": spec.providers,
        "metadata": _metadata(spec),
        "tags": list(spec.metadata.tags),
        "trace_id": spec.metadata.trace_id,
        "output": {},
        "source": {**(source or {}), **recipient.source},
    }
    if tracing.enabled:
        tracing.stamp(row["source"])  # routing and delivery continue the sender's trace
    return row


def get_message(session: Session, scope: Scope, message_id: str) -> Message:
    return found(
        MessageRepository(session).get(scope.environment_id, message_id),
        _missing_message(message_id),
    )


def cancel(session: Session, scope: Scope, message_id: str) -> Message:
    repository = MessageRepository(session)
    # The pipeline's lock order: the deliveries, then their message. A delivery created
    # meanwhile is `sending`, which refuses the cancel below.
    repository.lock_deliveries(get_message(session, scope, message_id))
    message = repository.lock(message_id)
    assert message is not None
    if message.status == MessageStatus.CANCELED:
        return message
    deliveries = repository.deliveries(message)
    sending = [d for d in deliveries if d.status != DeliveryStatus.PENDING]
    if message.status not in MessageStatus.CANCELABLE or sending:
        raise Conflict(
            f"Message {message_id!r} is {message.status} and can no longer be canceled: a "
            "message can be canceled until it is sent.",
            code="message_not_cancelable",
        )
    now = utcnow()
    message.status = MessageStatus.CANCELED
    message.updated_at = now
    message.metadata_ = {**message.metadata_, "canceled_at": now.isoformat()}
    for delivery in deliveries:
        delivery.status = DeliveryStatus.FAILED
        delivery.error = "canceled"
        delivery.updated_at = now
    repository.record(message, "CANCELED")
    return message


# A message that ended without being sent on any channel: only these can be resent.
# CANCELED and FILTERED were stopped on purpose (a cancel, the user's preferences), and the
# others were sent or are still under way.
RESENDABLE = frozenset(
    {MessageStatus.UNDELIVERABLE, MessageStatus.UNROUTABLE, MessageStatus.UNMAPPED}
)

# The history entries that link a resent message and its resend, both ways.
RESENT = "RESENT"


def resend(
    session: Session, scope: Scope, message_id: str, *, by: str, message_timeout: timedelta
) -> AcceptedMessage:
    """A new ENQUEUED message with the failed message's recipient, data, routing, channels,
    providers, metadata and tags; rendered when it is routed, so with its template's
    content as it is now (a fixed template takes effect). It is sent at once and does not
    expire. The original's history gets RESENT (`message_id` of the new one), the new
    one's ENQUEUED has `resend_of`; `by` says who asked, and where.

    A message that was sent, is under way, or was stopped on purpose is refused (409), as is
    one already resent: resend that one instead, so a repeated click sends nothing twice.
    """
    repository = MessageRepository(session)
    # The pipeline's lock order: the deliveries, then their message.
    deliveries = repository.lock_deliveries(get_message(session, scope, message_id))
    original = repository.lock(message_id)
    assert original is not None
    _check_resendable(session, scope, original, deliveries)
    now = utcnow()
    new_message_id = new_id("msg")
    repository.add_messages(
        [_resent_row(original, new_message_id, now + message_timeout, now)],
        [
            NewHistory(
                new_message_id,
                "ENQUEUED",
                {"request_id": new_message_id, "resend_of": message_id, "by": by[:300]},
            )
        ],
    )
    repository.record(original, RESENT, message_id=new_message_id, by=by[:300])
    return AcceptedMessage(new_message_id, None)


def _check_resendable(
    session: Session, scope: Scope, original: Message, deliveries: Sequence[MessageDelivery]
) -> None:
    """Refuse (409) to resend a message that was sent, is under way, was stopped on purpose
    or was resent already, or whose template is gone."""
    message_id = original.message_id
    if original.status not in RESENDABLE or any(
        delivery.status != DeliveryStatus.FAILED for delivery in deliveries
    ):
        raise Conflict(
            f"Message {message_id!r} is {original.status}: only a message that was not sent "
            f"({', '.join(sorted(RESENDABLE))}) can be resent. "
            + (
                "It was sent; send a new message with POST /send instead."
                if original.status in MessageStatus.ACCEPTED
                else "Wait until it ends."
                if original.status not in MessageStatus.FINAL
                else "It was stopped on purpose; send a new message with POST /send instead."
            ),
            code="message_not_resendable",
            field="message_id",
        )
    resent_as = resent_as_of(session, [original]).get(original.id)
    if resent_as is not None:
        raise Conflict(
            f"Message {message_id!r} was already resent as {resent_as!r}. Open that message, "
            "and resend it if it failed too.",
            code="message_already_resent",
            field="message_id",
        )
    if original.notification_id and not NotificationRepository(session).exists(
        scope, original.notification_id
    ):
        raise Conflict(
            f"Message {message_id!r} was made from template {original.notification_id!r}, "
            "which does not exist (any more). Create it (PUT /notifications/"
            f"{original.notification_id}, or in Studio), then resend.",
            code="template_missing",
            field="message_id",
        )


def _resent_row(
    original: Message, message_id: str, timeout_at: datetime, now: datetime
) -> dict[str, Any]:
    """The new message's row: the original's recipient, content and options, sent at once."""
    metadata = {key: value for key, value in original.metadata_.items() if key != "canceled_at"}
    return {
        "workspace_id": original.workspace_id,
        "environment_id": original.environment_id,
        "message_id": message_id,
        "request_id": message_id,
        "status": MessageStatus.ENQUEUED,
        "recipient": original.recipient,
        "to": original.to,
        "notification_id": original.notification_id,
        "content": original.content,
        "data": original.data,
        "routing": original.routing,
        "channels": original.channels,
        "providers": original.providers,
        "metadata": metadata,
        "tags": original.tags,
        "trace_id": original.trace_id,
        "output": {},
        "source": original.source,
        "send_at": None,
        "expires_at": None,
        "timeout_at": timeout_at,
        "enqueued_at": now,
        "updated_at": now,
    }


def resent_as_of(session: Session, messages: Sequence[Message]) -> dict[int, str]:
    """The message each of `messages` was resent as, by primary key, for those resent."""
    return MessageRepository(session).resent_as({message.id for message in messages}, RESENT)


def event_of(message: Message) -> str:
    """Courier's `event`: the id of what started the message, never null (Courier's SDKs
    require it). In order:
    - the send's `metadata.event`, Courier's own "event that generated this request";
    - for a message an automation sent, what started its run: the run's `source`, such as
      `segment/track/Order Shipped`, `inbound/Signed Up` or `invoke/thanks`;
    - the template the send named: in Courier, `template` is a notification id or the
      event mapped to it;
    - otherwise how the send arrived: `api/send`, or `studio/send` for a test send."""
    event = message.metadata_.get("event")
    if isinstance(event, str) and event:
        return event
    source = message.source
    trigger = source.get("trigger")
    if isinstance(trigger, str) and trigger:
        return trigger
    if "run_id" in source:
        return f"invoke/{source.get('automation_id') or 'ad-hoc'}"
    if message.notification_id:
        return message.notification_id
    return "studio/send" if source.get("type") == "studio" else "api/send"


def recipient_of(message: Message) -> str:
    """Courier's `recipient`, never null: the user id, else the address the send gave."""
    if message.recipient:
        return message.recipient
    for key in ("email", "phone_number", "list_id", "audience_id", "tenant_id"):
        value = message.to.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


# Courier's reasons (trycourier validates `reason` against them); Tidings' finer ones read as
# Courier's FAILED, except an outcome not known, which is no failure.
COURIER_REASONS = frozenset(
    {
        "BOUNCED",
        "FAILED",
        "FILTERED",
        "NO_CHANNELS",
        "NO_PROVIDERS",
        "OPT_IN_REQUIRED",
        "PROVIDER_ERROR",
        "UNPUBLISHED",
        "UNSUBSCRIBED",
    }
)
NOT_A_FAILURE = frozenset({"UNKNOWN_OUTCOME"})
# A suppressed message was kept back on purpose, as Courier's FILTERED ones are; the reasons
# of the suppression list that Courier has no name for read as FILTERED.
SUPPRESSION_REASONS = frozenset(set(SuppressionReason.ALL) - COURIER_REASONS)


# Tidings' own statuses, as Courier's SDKs read them: a bounce is Courier's UNDELIVERABLE
# (reason BOUNCED); a complaint came from a recipient who got the message.
COURIER_STATUSES = {
    MessageStatus.BOUNCED: MessageStatus.UNDELIVERABLE,
    MessageStatus.COMPLAINED: MessageStatus.DELIVERED,
    MessageStatus.SUPPRESSED: MessageStatus.FILTERED,
}


def courier_status(status: str) -> str:
    """A message's status as Courier names it."""
    return COURIER_STATUSES.get(status, status)


def courier_reason(reason: str | None) -> str | None:
    """A message's reason as Courier names it."""
    if reason is None or reason in COURIER_REASONS:
        return reason
    if reason in SUPPRESSION_REASONS:
        return "FILTERED"
    return None if reason in NOT_A_FAILURE else "FAILED"


def view(message: Message, deliveries: Sequence[MessageDelivery]) -> MessageView:
    canceled = message.metadata_.get("canceled_at")
    return MessageView(
        id=message.message_id,
        requestId=message.request_id,
        status=courier_status(message.status),
        tidings_status=message.status,
        reason=courier_reason(message.reason),
        tidings_reason=message.reason,
        error=message.reason_detail,
        recipient=recipient_of(message),
        to=message.to,
        notification=message.notification_id or "",
        event=event_of(message),
        tags=message.tags,
        trace_id=message.trace_id,
        enqueued=_epoch_ms(message.enqueued_at) or 0,
        sent=_epoch_ms(message.sent_at),
        delivered=_epoch_ms(message.delivered_at),
        opened=_epoch_ms(message.opened_at),
        clicked=_epoch_ms(message.clicked_at),
        canceledAt=_epoch_ms(parse_timestamp(canceled)) if canceled else None,
        send_at=message.send_at.isoformat() if message.send_at else None,
        providers=[
            ProviderDetail(
                channel={"name": delivery.channel, "key": delivery.channel},
                provider=delivery.provider,
                status=delivery.status.upper(),
                reference={"provider_message_id": delivery.provider_message_id},
                error=delivery.error,
            )
            for delivery in deliveries
        ],
    )


def history_view(message: Message, session: Session) -> list[dict[str, Any]]:
    return [
        {"ts": _epoch_ms(event.created_at), "type": event.type, **event.data}
        for event in MessageRepository(session).history(message)
    ]


def output_view(message: Message) -> list[dict[str, Any]]:
    channels: dict[str, dict[str, Any]] = message.output.get("channels", {})
    return [
        {"channel": channel, "channel_id": channel, "content": content}
        for channel, content in channels.items()
    ]
