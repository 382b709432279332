"""The message state machine, run by jobs.

1. `process_message`: ENQUEUED/DELAYED → loads the profile (PROFILE_LOADED), renders every
   channel (RENDERED), routes (ROUTED, or UNROUTABLE / UNMAPPED; UNDELIVERABLE with reason
   RENDER_FAILED when nothing routed and a channel the routing wanted did not render;
   SUPPRESSED when nothing routed because addresses are on the suppression list: routing
   skips a suppressed channel), and creates one delivery per chosen channel. One
   transaction.
2. `deliver`: one delivery, one provider attempt. The attempt is marked `sending` and
   committed before the provider is called, and its outcome is committed after, so:
   - success → SENT, with an excerpt of the provider's reply;
   - retryable error → tried again with exponential backoff while the provider is inside its
     failover window; then the next provider takes over;
   - permanent error → the next provider takes over at once;
   - unknown outcome (the provider got the message, its answer was lost) → the delivery is
     `unknown`, with an UNKNOWN_OUTCOME history entry, and is neither retried nor failed over;
   - no provider left → the delivery fails; when every delivery failed, UNDELIVERABLE with the
     last provider's reason.
3. The sweeper re-drives what a crash left: messages still ENQUEUED (or due DELAYED), due
   retries, and deliveries stuck in `sending`. A re-driven attempt uses the same provider
   idempotency key, and a delivery is recorded as sent at most once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db import Outbox
from tidings.engagement.schemas import EnvironmentTracking
from tidings.engagement.service import environment_tracking, instrument_email
from tidings.inbox.service import store as store_inbox_message
from tidings.kit.sql import by_environment
from tidings.kit.time import utcnow
from tidings.message.repository import DELIVERY_ATTEMPTS, MessageRepository, SentReply
from tidings.message.routing import Route, RoutingResult, plan_routes
from tidings.models import (
    DeliveryStatus,
    Message,
    MessageDelivery,
    MessageStatus,
    Notification,
)
from tidings.notification.repository import NotificationRepository
from tidings.notification.service import default_routing, render_all
from tidings.observability import metrics, tracing
from tidings.preference.service import (
    Decision,
    decide,
    unsubscribe_headers,
    unsubscribe_token,
    unsubscribe_url,
)
from tidings.profile.repository import ProfileRepository
from tidings.provider.base import (
    CHANNELS,
    Delivery,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    SendResult,
    UnknownOutcomeError,
)
from tidings.provider.service import ConfiguredProvider
from tidings.suppression.service import Hit, Suppressed, addresses_of
from tidings.template.elemental import content_to_specs
from tidings.template.render import RenderContext
from tidings.webhook_out.events import MESSAGE_SENT, Emission, message_data
from tidings.worker.context import WorkerContext
from tidings.worker.redrive import redrive_attempts

logger = logging.getLogger(__name__)

# A channel the routing wanted failed to render (a Liquid error at send time): the message is
# UNDELIVERABLE with this reason. Courier's reasons have none for it; UNROUTABLE would send
# the reader looking for a missing address or provider.
RENDER_FAILED = "RENDER_FAILED"

INLINE_ROUTING = {"method": "single", "channels": ["email", "push", "sms", "chat", "inbox"]}


def _finish(
    repository: MessageRepository,
    message: Message,
    status: str,
    reason: str | None,
    detail: str | None = None,
    **data: Any,
) -> None:
    message.status = status
    message.reason = reason
    message.reason_detail = detail
    message.updated_at = utcnow()
    repository.record(message, status, reason=reason, detail=detail, **data)
    metrics.message_outcome(status, None)


class _Lookups:
    """What one routing transaction reads once for all its messages."""

    def __init__(self, context: WorkerContext, session: Session) -> None:
        self.context = context
        self.session = session
        self.profiles: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.notifications: dict[tuple[str, str], Notification | None] = {}
        self.providers: dict[str, list[ConfiguredProvider]] = {}
        self.providers_by_name: dict[str, dict[str, ConfiguredProvider]] = {}
        self.trackings: dict[str, EnvironmentTracking] = {}
        self.suppressed = Suppressed(session)

    def preload_profiles(self, messages: Iterable[Message]) -> None:
        wanted = {(m.environment_id, m.recipient) for m in messages if m.recipient is not None}
        self.profiles.update(ProfileRepository(self.session).data_of_users(wanted))

    def preload_suppressions(self, messages: Iterable[Message]) -> None:
        """The suppression entries of every address of the messages: one query per
        environment of the group."""
        by_environment: dict[str, set[tuple[str, str]]] = {}
        for message in messages:
            addresses = addresses_of(_recipient(message, self.profile(message)))
            by_environment.setdefault(message.environment_id, set()).update(addresses.items())
        for environment_id, pairs in by_environment.items():
            self.suppressed.preload(environment_id, pairs)

    def profile(self, message: Message) -> dict[str, Any] | None:
        if message.recipient is None:
            return None
        key = (message.environment_id, message.recipient)
        if key not in self.profiles:
            self.profiles.update(ProfileRepository(self.session).data_of_users({key}))
        return self.profiles[key]

    def notification(self, environment_id: str, notification_id: str) -> Notification | None:
        key = (environment_id, notification_id)
        if key not in self.notifications:
            self.notifications[key] = NotificationRepository(self.session).get(
                environment_id, notification_id
            )
        return self.notifications[key]

    def tracking(self, environment_id: str) -> EnvironmentTracking:
        """The environment's default open and click tracking."""
        if environment_id not in self.trackings:
            self.trackings[environment_id] = environment_tracking(self.session, environment_id)
        return self.trackings[environment_id]

    def configured(self, environment_id: str) -> list[ConfiguredProvider]:
        if environment_id not in self.providers:
            self.providers[environment_id] = self.context.providers.get(
                self.session, environment_id
            )
        return self.providers[environment_id]

    def configured_by_name(self, environment_id: str) -> dict[str, ConfiguredProvider]:
        if environment_id not in self.providers_by_name:
            self.providers_by_name[environment_id] = {
                provider.name: provider for provider in self.configured(environment_id)
            }
        return self.providers_by_name[environment_id]


def process_message(context: WorkerContext, message_id: str) -> list[Attempt]:
    """Profile, render and route one message.

    In the same transaction, each chosen channel's first provider attempt is started: the
    returned attempts are committed as `sending`, for `attempt_delivery` to carry out.
    """
    return process_messages(context, [message_id])


def process_messages(context: WorkerContext, message_ids: list[str]) -> list[Attempt]:
    """`process_message` for several messages in one transaction.

    Profiles, templates and provider lists are read once for the whole group; the new
    deliveries (already `sending`) and the history rows are each written in one multi-row
    INSERT. An error in one message rolls back the group; callers then process the
    messages one by one.
    """
    with context.database.write() as (session, outbox):
        repository = MessageRepository(session, batch_history=True)
        messages = repository.lock_many(message_ids)
        lookups = _Lookups(context, session)
        lookups.preload_profiles(messages.values())
        lookups.preload_suppressions(messages.values())
        routed: list[tuple[Message, Route]] = []
        # Each message's span, for its provider attempts to be its children.
        traces: dict[int, str | None] = {}
        with session.no_autoflush:
            for message_id in message_ids:
                message = messages.get(message_id)
                if message is None:
                    pass
                elif tracing.enabled:
                    routes, traces[message.id] = _route_traced(
                        context, outbox, repository, message, lookups
                    )
                    routed.extend(routes)
                else:
                    routed.extend(_route(context, outbox, repository, message, lookups))
        now = utcnow()
        delivery_ids = repository.insert_deliveries(
            [_first_attempt_row(context, message, route, now) for message, route in routed]
        )
        repository.write_routed()
        repository.write_history()
        return [
            _attempt(
                message,
                delivery_id,
                route.channel,
                route.providers[0],
                lookups.configured_by_name(message.environment_id),
                traces.get(message.id),
            )
            for (message, route), delivery_id in zip(routed, delivery_ids, strict=True)
        ]


def _route_traced(
    context: WorkerContext,
    outbox: Outbox,
    repository: MessageRepository,
    message: Message,
    lookups: _Lookups,
) -> tuple[list[tuple[Message, Route]], str | None]:
    """`_route` in the message's span, a child of the span that made the message; its routes
    and the span's traceparent."""
    return tracing.traced(
        "message",
        lambda: (
            _route(context, outbox, repository, message, lookups),
            tracing.current_traceparent(),
        ),
        lambda routed: {"status": message.status, "routes": len(routed[0])},
        parent=tracing.stored(message.source),
        attributes={
            "message_id": message.message_id,
            "notification_id": message.notification_id,
            "environment_id": message.environment_id,
        },
    )


def _first_attempt_row(
    context: WorkerContext, message: Message, route: Route, now: datetime
) -> dict[str, Any]:
    """A new delivery whose first attempt starts in this transaction: `sending` from the
    start, on the route's first provider."""
    return {
        "message_pk": message.id,
        "environment_id": message.environment_id,
        "channel": route.channel,
        "providers": route.providers,
        "provider_index": 0,
        "provider": route.providers[0],
        "status": DeliveryStatus.SENDING,
        "attempts": 1,
        "provider_attempts": 1,
        "provider_started_at": now,
        "sending_since": now,
        "owner": context.owner,
        "updated_at": now,
    }


def _route(
    context: WorkerContext,
    outbox: Outbox,
    repository: MessageRepository,
    message: Message,
    lookups: _Lookups,
) -> list[tuple[Message, Route]]:
    """Route one locked message; returns the routes to create deliveries for."""
    now = utcnow()
    if not _due(outbox, repository, message, now):
        return []
    profile = lookups.profile(message)
    repository.record(message, "PROFILE_LOADED", found=profile is not None)
    recipient = _recipient(message, profile)
    data = {**message.data, **(message.to.get("data") or {})}
    notification = None
    if message.notification_id:
        notification = lookups.notification(message.environment_id, message.notification_id)
        if notification is None:
            _finish(
                repository,
                message,
                MessageStatus.UNMAPPED,
                "NOTIFICATION_NOT_FOUND",
                f"no template {message.notification_id!r}",
            )
            return []
    topic_id = (notification.topic_id if notification else None) or message.metadata_.get(
        "subscription_topic_id"
    )
    decision = decide(lookups.session, message.environment_id, message.recipient, topic_id)
    if not decision.allowed:
        _finish(
            repository,
            message,
            MessageStatus.FILTERED,
            decision.reason or "UNSUBSCRIBED",
            decision.detail,
            topic_id=topic_id,
        )
        return []
    content = _Content.of(message, notification, data, recipient, decision)
    with tracing.span("render") as current:
        output = _render(context, repository, message, content, topic_id, lookups)
        if current is not None and output is not None:
            tracing.set_attributes(
                current,
                channels=",".join(sorted(output["channels"])),
                failures=len(output["failures"]),
            )
    if output is None:
        return []
    with tracing.span("routing") as current:
        suppressed = lookups.suppressed.hits(message.environment_id, recipient, topic_id)
        routes = _plan(context, repository, message, content, output, lookups, now, suppressed)
        if current is not None:
            tracing.set_attributes(current, routes=len(routes), status=message.status)
        return routes


def _recipient(message: Message, profile: dict[str, Any] | None) -> dict[str, Any]:
    """Who the message goes to: the profile, with the send's `to` over it."""
    inline_to = {
        key: value
        for key, value in message.to.items()
        if key not in ("data", "context", "preferences")
    }
    return {**(profile or {}), **inline_to}


def _due(outbox: Outbox, repository: MessageRepository, message: Message, now: datetime) -> bool:
    """Whether the message is to be routed now: still waiting, due and not expired. A
    message not due yet is scheduled again for its time; an expired one ends here."""
    if message.status not in (MessageStatus.ENQUEUED, MessageStatus.DELAYED):
        return False
    if message.send_at is not None and message.send_at > now:
        outbox.add_message(message.message_id, message.send_at, message.environment_id)
        return False
    if message.expires_at is not None and message.expires_at <= now:
        _finish(
            repository,
            message,
            MessageStatus.UNDELIVERABLE,
            "EXPIRED",
            "the message expired before it was routed",
        )
        return False
    return True


@dataclass(frozen=True)
class _Content:
    """What a message renders and how it is routed: its template's or its inline content."""

    specs: dict[str, dict[str, Any]]
    strict: bool
    routing: dict[str, Any]
    data: dict[str, Any]
    recipient: dict[str, Any]
    # The template's open and click tracking (None: the environment's default).
    tracking: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        message: Message,
        notification: Notification | None,
        data: dict[str, Any],
        recipient: dict[str, Any],
        decision: Decision,
    ) -> _Content:
        tracking = None
        if notification is not None:
            specs = notification.content
            strict = notification.strict
            tracking = notification.tracking
            routing = (
                message.routing or notification.routing or default_routing(notification.content)
            )
        else:
            specs = content_to_specs(message.content or {}, {"data": data, "profile": recipient})
            strict = False
            routing = message.routing or INLINE_ROUTING
        if decision.channels:
            # The user chose the channels for this topic: send on each of them that works.
            routing = {"method": "all", "channels": list(decision.channels)}
        return cls(specs, strict, routing, data, recipient, tracking)


def _unsubscribe_links(
    context: WorkerContext, message: Message, topic_id: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The unsubscribe URL for the templates and the email headers that carry it, when the
    message has a topic and a user."""
    if not (topic_id and message.recipient and context.unsubscribe_key):
        return {}, {}
    token = unsubscribe_token(
        context.unsubscribe_key, message.environment_id, message.recipient, topic_id
    )
    url = unsubscribe_url(context.base_url, token)
    return {"unsubscribe": url}, unsubscribe_headers(url)


def _render(
    context: WorkerContext,
    repository: MessageRepository,
    message: Message,
    content: _Content,
    topic_id: str | None,
    lookups: _Lookups,
) -> dict[str, Any] | None:
    """Render every channel and record it; the message's output, or None when a channel
    went over a render limit (the message is then UNDELIVERABLE)."""
    urls, headers = _unsubscribe_links(context, message, topic_id)
    render_context = RenderContext(
        data=content.data, profile=content.recipient, recipient=message.recipient, urls=urls
    )
    rendering = render_all(content.specs, render_context, content.strict)
    if rendering.failures:
        metrics.render_failures(rendering.failures)
    rendered = rendering.channels
    notes: dict[str, Any] = {}
    if "email" in rendered:
        tracked = instrument_email(
            rendered["email"],
            content.tracking,
            environment_default=lambda: lookups.tracking(message.environment_id),
            key=context.engagement_key,
            base_url=context.base_url,
            message_id=message.message_id,
        )
        if tracked is not None:
            notes["tracking"] = {"opens": tracked.pixel, "links": tracked.links}
    output = {
        "recipient": content.recipient,
        "channels": rendered,
        "errors": rendering.errors,
        "failures": rendering.failures,
        "email_headers": headers,
    }
    if rendering.dropped_links:
        notes["dropped_links"] = [link.as_dict() for link in rendering.dropped_links]
    if rendering.failures:
        notes["failures"] = rendering.failures
    repository.record(
        message, "RENDERED", channels=sorted(rendered), errors=rendering.errors, **notes
    )
    if rendering.limit_error is not None:
        message.output = output
        _finish(
            repository, message, MessageStatus.UNDELIVERABLE, "RENDER_LIMIT", rendering.limit_error
        )
        return None
    return output


def _routing_channels(
    routing: dict[str, Any], providers_by_name: dict[str, ConfiguredProvider]
) -> set[str]:
    """The channels a routing names, its nested routings' and its pinned providers' too."""
    channels: set[str] = set()
    for entry in routing.get("channels", []):
        if isinstance(entry, dict):
            channels |= _routing_channels(entry, providers_by_name)
        elif entry in CHANNELS:
            channels.add(str(entry))
        elif entry in providers_by_name:
            channels.add(providers_by_name[entry].channel)
    return channels


def _failed_renders(
    routing: dict[str, Any], output: dict[str, Any], lookups: _Lookups, environment_id: str
) -> list[dict[str, Any]]:
    """The render failures of the channels the routing could have chosen."""
    wanted = _routing_channels(routing, lookups.configured_by_name(environment_id))
    return [failure for failure in output["failures"] if failure["channel"] in wanted]


def _plan(
    context: WorkerContext,
    repository: MessageRepository,
    message: Message,
    content: _Content,
    output: dict[str, Any],
    lookups: _Lookups,
    now: datetime,
    suppressed: dict[str, Hit],
) -> list[tuple[Message, Route]]:
    """Choose the channels and providers: the message is ROUTED, or UNROUTABLE with why
    (SUPPRESSED when the suppression list is why)."""
    result = plan_routes(
        content.routing,
        content_channels=set(output["channels"]),
        recipient=content.recipient,
        providers=lookups.configured(message.environment_id),
        channel_options=message.channels,
        provider_options=message.providers,
        variables={"data": content.data, "profile": content.recipient},
        http=context.http,
        suppressed={channel: hit.describe() for channel, hit in suppressed.items()},
    )
    skipped = [suppressed[channel] for channel in result.suppressed]
    if not result.routes:
        _unroutable(repository, message, content, output, lookups, result, skipped)
        return []
    repository.mark_routed(message, output, now)
    extra = {"suppressed": [hit.as_dict() for hit in skipped]} if skipped else {}
    repository.record(
        message,
        "ROUTED",
        routes=[{"channel": r.channel, "providers": r.providers} for r in result.routes],
        notes=result.notes,
        **extra,
    )
    return [(message, route) for route in result.routes]


def _unroutable(
    repository: MessageRepository,
    message: Message,
    content: _Content,
    output: dict[str, Any],
    lookups: _Lookups,
    result: RoutingResult,
    skipped: list[Hit],
) -> None:
    """Finish a message no route was found for, with the first reason that explains it: a
    channel the routing wanted did not render, the suppression list, or the planner's."""
    message.output = output
    failed = _failed_renders(content.routing, output, lookups, message.environment_id)
    if failed:
        _finish(
            repository,
            message,
            MessageStatus.UNDELIVERABLE,
            RENDER_FAILED,
            "; ".join(f"{f['channel']}.{f['field']}: {f['error']}" for f in failed),
            failures=failed,
            notes=result.notes,
        )
    elif skipped:
        # Some channel would have been sent on but for the list: the entry of the first is
        # the reason; each one's is in the history.
        _finish(
            repository,
            message,
            MessageStatus.SUPPRESSED,
            skipped[0].reason,
            "; ".join(hit.describe() for hit in skipped),
            suppressed=[hit.as_dict() for hit in skipped],
            notes=result.notes,
        )
    else:
        _finish(
            repository,
            message,
            MessageStatus.UNROUTABLE,
            result.reason,
            "; ".join(result.notes) or None,
        )


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    message_pk: int
    message_id: str
    provider_name: str
    channel: str
    delivery: Delivery
    provider: ConfiguredProvider | None
    environment_id: str
    recipient: str | None
    # The traceparent of the span the attempt continues (the message's), when tracing is on.
    trace: str | None = None


def start_attempt(context: WorkerContext, delivery_id: int) -> Attempt | None:
    """Mark the delivery `sending` and commit, or return None when there is nothing to do."""
    with context.database.write() as (session, outbox):
        repository = MessageRepository(session)
        delivery = repository.lock_delivery(delivery_id)
        if delivery is None:
            return None
        now = utcnow()
        if delivery.status == DeliveryStatus.SENDING and not repository.sending_orphaned(
            delivery_id, now, context.settings
        ):
            return None  # its attempt is in the hands of a live process
        if delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            outbox.add_delivery(delivery_id, delivery.next_attempt_at)
            return None
        message = repository.lock_by_pk(delivery.message_pk)
        assert message is not None
        if message.status in (MessageStatus.CANCELED, MessageStatus.UNDELIVERABLE):
            delivery.status = DeliveryStatus.FAILED
            delivery.error = f"message {message.status.lower()}"
            delivery.updated_at = now
            return None
        if (
            message.expires_at is not None
            and message.expires_at <= now
            and message.status != MessageStatus.SENT
        ):
            delivery.status = DeliveryStatus.FAILED
            delivery.error = "expired"
            _finish(
                repository,
                message,
                MessageStatus.UNDELIVERABLE,
                "EXPIRED",
                "the message expired before it was sent",
            )
            return None
        return _begin_attempt(
            context,
            session,
            repository,
            message,
            delivery,
            now,
            context.providers.get(session, delivery.environment_id),
        )


def _begin_attempt(
    context: WorkerContext,
    session: Session,
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    now: datetime,
    providers: list[ConfiguredProvider],
) -> Attempt:
    """Mark one provider attempt `sending`; it commits with the caller's transaction."""
    if delivery.status == DeliveryStatus.SENDING:
        repository.record(
            message,
            "RESUMED",
            channel=delivery.channel,
            provider=delivery.provider,
            detail="re-driven after an interrupted attempt",
        )
    delivery.status = DeliveryStatus.SENDING
    delivery.sending_since = now
    delivery.owner = context.owner
    delivery.attempts += 1
    delivery.provider_attempts += 1
    delivery.provider_started_at = delivery.provider_started_at or now
    delivery.updated_at = now
    return _attempt(
        message,
        delivery.id,
        delivery.channel,
        delivery.provider,
        {provider.name: provider for provider in providers},
        tracing.stored(message.source) if tracing.enabled else None,
    )


def _attempt(
    message: Message,
    delivery_id: int,
    channel: str,
    provider_name: str,
    configured: dict[str, ConfiguredProvider],
    trace: str | None = None,
) -> Attempt:
    """What the provider call needs, read from the message while its transaction is open."""
    output = message.output
    return Attempt(
        trace=trace,
        delivery_id=delivery_id,
        message_pk=message.id,
        message_id=message.message_id,
        provider_name=provider_name,
        channel=channel,
        provider=configured.get(provider_name),
        environment_id=message.environment_id,
        recipient=message.recipient,
        delivery=Delivery(
            message_id=message.message_id,
            idempotency_key=f"{message.message_id}:{channel}:{provider_name}",
            channel=channel,
            recipient=output.get("recipient", {}),
            content=output.get("channels", {}).get(channel, {}),
            headers=output.get("email_headers", {}) if channel == "email" else {},
            data={**message.data, **(message.to.get("data") or {})},
            metadata={"tags": message.tags, "trace_id": message.trace_id},
        ),
    )


def attempt_delivery(context: WorkerContext, attempt: Attempt) -> str:
    """Call the provider for a started attempt and record the outcome; the delivery's
    status. With tracing on, a `provider attempt` span in the message's trace."""
    if tracing.enabled:
        return tracing.traced(
            "provider attempt",
            lambda: _attempt_delivery(context, attempt),
            lambda status: {"outcome": status},
            parent=attempt.trace,
            kind="client",
            attributes={
                "provider": attempt.provider_name,
                "channel": attempt.channel,
                "message_id": attempt.message_id,
                "delivery_id": attempt.delivery_id,
            },
        )
    return _attempt_delivery(context, attempt)


def _attempt_delivery(context: WorkerContext, attempt: Attempt) -> str:
    started = time.perf_counter()
    result, error = call_provider(context, attempt)
    metrics.provider_call(attempt.provider_name, attempt.channel, time.perf_counter() - started)
    metrics.message_outcome(_outcome(error), attempt.provider_name)
    return _finish_attempt(context, attempt, result, error)


def _outcome(error: ProviderError | None) -> str:
    """A provider call's outcome, as the messages metric counts it."""
    if error is None:
        return MessageStatus.SENT
    if isinstance(error, UnknownOutcomeError):
        return UNKNOWN_OUTCOME
    return "PROVIDER_ERROR"


def call_provider(
    context: WorkerContext, attempt: Attempt
) -> tuple[SendResult | None, ProviderError | None]:
    """Carry out a started attempt; the provider's result or its typed error."""
    if attempt.provider_name == INBOX:
        return _store_in_inbox(context, attempt), None
    try:
        provider = attempt.provider
        if provider is None:
            raise PermanentProviderError(
                f"provider {attempt.provider_name!r} is no longer configured"
            )
        instance = context.providers.instance(provider)
        return instance.send(attempt.delivery), None
    except ProviderError as exc:
        return None, exc
    except Exception as exc:
        logger.exception("provider %s crashed", attempt.provider_name)
        return None, RetryableProviderError(
            f"{attempt.provider_name} failed unexpectedly: {type(exc).__name__}: {exc}"
        )


INBOX = "inbox"
# The history entry (and the message's reason) of an attempt whose outcome is unknown.
UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"


def _store_in_inbox(context: WorkerContext, attempt: Attempt) -> SendResult:
    """The inbox channel needs no vendor: Tidings stores the message for the user."""
    with context.database.write() as (session, outbox):
        message = MessageRepository(session).lock(attempt.message_id)
        assert message is not None
        assert message.recipient is not None
        row = store_inbox_message(
            session,
            message.environment_id,
            message.workspace_id,
            message.recipient,
            message.message_id,
            attempt.delivery.content,
            attempt.delivery.data,
        )
        outbox.wake_inbox(row.environment_id, row.user_id)
        row_id = row.id
    return SendResult(provider_message_id=str(row_id), response_excerpt="stored in the inbox")


def backoff_seconds(settings: Settings, attempt: int) -> float:
    return float(
        min(settings.retry_max_seconds, settings.retry_base_seconds * (2 ** max(0, attempt - 1)))
    )


def _finish_attempt(
    context: WorkerContext,
    attempt: Attempt,
    result: SendResult | None,
    error: ProviderError | None,
) -> str:
    """Record one provider outcome in a transaction of its own, as soon as it is known:
    a crash can leave at most this one send unrecorded. Then schedule a retry if any."""
    if error is None:
        assert result is not None
        reply = SentReply(
            provider=attempt.provider_name,
            channel=attempt.channel,
            provider_message_id=result.provider_message_id,
            response=result.response_excerpt,
        )
        sent = Emission(
            attempt.environment_id,
            MESSAGE_SENT,
            message_data(
                attempt.message_id,
                MessageStatus.SENT,
                attempt.recipient,
                attempt.channel,
                attempt.provider_name,
                result.provider_message_id,
            ),
        )
        return MessageRepository.record_sent(
            context.database, attempt.delivery_id, attempt.message_pk, reply, sent
        )
    with context.database.write() as (session, outbox):
        status, retry = _apply_error(context.settings, MessageRepository(session), attempt, error)
        if retry is not None:
            outbox.add_delivery(*retry)
    return status


def _apply_error(
    settings: Settings, repository: MessageRepository, attempt: Attempt, error: ProviderError
) -> tuple[str, tuple[int, datetime | None] | None]:
    """A failed attempt, under row locks: its delivery's status, and a retry to schedule if
    any. A delivery no longer `sending` (a callback or a cancel got there first) keeps its
    status."""
    delivery = repository.lock_delivery(attempt.delivery_id)
    assert delivery is not None
    message = repository.lock_by_pk(delivery.message_pk)
    assert message is not None
    if delivery.status != DeliveryStatus.SENDING:
        return delivery.status, None
    now = utcnow()
    delivery.sending_since = None
    delivery.updated_at = now
    delivery.error = error.reason
    if isinstance(error, UnknownOutcomeError):
        _record_unknown_outcome(repository, message, delivery, error, now)
        return delivery.status, None
    repository.record(
        message,
        "PROVIDER_ERROR",
        channel=delivery.channel,
        provider=delivery.provider,
        retryable=isinstance(error, RetryableProviderError),
        reason=error.reason,
        response=error.response_excerpt,
    )
    retry_at = _retry_at(settings, message, delivery, error, now)
    if retry_at is not None:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = retry_at
        return delivery.status, (delivery.id, retry_at)
    if delivery.provider_index + 1 < len(delivery.providers):
        _fail_over(repository, message, delivery)
        return delivery.status, (delivery.id, None)
    delivery.status = DeliveryStatus.FAILED
    _fail_message_if_all_failed(repository, message, delivery, error)
    return delivery.status, None


def _record_unknown_outcome(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    error: UnknownOutcomeError,
    now: datetime,
) -> None:
    """The provider may have sent it: no retry, no failover, so no second copy."""
    delivery.status = DeliveryStatus.UNKNOWN
    repository.record(
        message,
        UNKNOWN_OUTCOME,
        channel=delivery.channel,
        provider=delivery.provider,
        reason=error.reason,
        response=error.response_excerpt,
    )
    if message.status not in MessageStatus.ACCEPTED:
        message.reason = UNKNOWN_OUTCOME
        message.reason_detail = error.reason
        message.updated_at = now


def _retry_at(
    settings: Settings,
    message: Message,
    delivery: MessageDelivery,
    error: ProviderError,
    now: datetime,
) -> datetime | None:
    """When to try the same provider again: after its backoff (or its Retry-After), if the
    error is retryable and that is still inside the provider's failover window and the
    message's timeout; otherwise None."""
    if not isinstance(error, RetryableProviderError):
        return None
    window_end = (delivery.provider_started_at or now) + timedelta(
        seconds=settings.failover_window_seconds
    )
    wait = backoff_seconds(settings, delivery.provider_attempts)
    if error.retry_after is not None:
        wait = max(wait, error.retry_after)
    next_at = now + timedelta(seconds=wait)
    if next_at <= window_end and next_at <= message.timeout_at:
        return next_at
    return None


def _fail_over(repository: MessageRepository, message: Message, delivery: MessageDelivery) -> None:
    """Hand the delivery to the next provider of its chain, to be attempted at once."""
    previous = delivery.provider
    delivery.provider_index += 1
    delivery.provider = delivery.providers[delivery.provider_index]
    delivery.provider_attempts = 0
    delivery.provider_started_at = None
    delivery.next_attempt_at = None
    delivery.status = DeliveryStatus.PENDING
    repository.record(
        message,
        "FAILOVER",
        channel=delivery.channel,
        provider=delivery.provider,
        previous=previous,
    )


def _fail_message_if_all_failed(
    repository: MessageRepository,
    message: Message,
    delivery: MessageDelivery,
    error: ProviderError,
) -> None:
    """A message not sent on any channel is UNDELIVERABLE once its last delivery failed,
    with that provider's reason."""
    others = [d for d in repository.deliveries(message) if d.id != delivery.id]
    if message.status not in MessageStatus.ACCEPTED and all(
        d.status in DeliveryStatus.NOT_DELIVERED for d in others
    ):
        _finish(
            repository,
            message,
            MessageStatus.UNDELIVERABLE,
            "PROVIDER_ERROR",
            error.reason,
            channel=delivery.channel,
            provider=delivery.provider,
            response=error.response_excerpt,
        )


def redrive_stuck_messages(
    context: WorkerContext, updated_before: datetime, unclaimed_since: datetime, limit: int
) -> int:
    """Claim, for a sweep, messages a lost job may have left ENQUEUED (or DELAYED and due),
    and process them again once the claim commits; returns how many."""
    with context.database.write() as (session, outbox):
        repository = MessageRepository(session)
        claimed = repository.claim_due_messages(updated_before, unclaimed_since, utcnow(), limit)
        for environment_id, pks in by_environment(claimed).items():
            for message_id in repository.message_ids(pks):
                outbox.add_message(message_id, None, environment_id)
        return len(claimed)


def redrive_stuck_deliveries(
    context: WorkerContext, due_before: datetime, unclaimed_since: datetime, limit: int
) -> int:
    """Claim, for a sweep, deliveries a dead process left `sending` and due retries, and
    attempt them again once the claim commits; returns how many."""
    return redrive_attempts(
        context, DELIVERY_ATTEMPTS, Outbox.add_delivery, due_before, unclaimed_since, limit
    )
