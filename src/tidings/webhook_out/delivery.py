"""One attempt of an outbound webhook delivery, between two transactions.

1. `start` (one transaction): a delivery `pending` and due, or `sending` with nobody to
   finish it, becomes `sending` under this process's lease, one more attempt counted; the
   endpoint's URL and signing secrets are read.
2. `post`, outside any transaction: the signed POST through the outbound guard's client,
   within the timeout, reading at most EXCERPT_BYTES of the answer.
3. `finish` (one transaction): the answer recorded (status, excerpt, latency, error). A 2xx
   is `succeeded`; anything else is retried after RETRY_SCHEDULE_SECONDS[attempt - 1]
   (a job at that time in the outbox), and after the last one the delivery is `failed`. A
   target the guard refuses is `failed` at once: asking again would be refused again.

A crash between 1 and 3 leaves the delivery `sending`; the sweeper re-drives it once its
owner's lease has expired (or after SENDING_STALE_SECONDS), so a receiver may get the same
`webhook-id` twice, which Standard Webhooks receivers deduplicate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from tidings.db import Outbox
from tidings.kit.outbound import OutboundRefused
from tidings.kit.time import utcnow
from tidings.models import WebhookDeliveryStatus
from tidings.webhook_out import signing
from tidings.webhook_out.repository import WEBHOOK_ATTEMPTS, WebhookRepository
from tidings.webhook_out.service import signing_secrets
from tidings.worker.context import WorkerContext
from tidings.worker.redrive import redrive_attempts

# Wait after the 1st, 2nd, … failed attempt; after the last, the delivery is `failed`:
# eight attempts over about 31 hours.
RETRY_SCHEDULE_SECONDS = (5, 30, 120, 600, 3600, 6 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1
EXCERPT_BYTES = 1024
ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Started:
    """An attempt marked `sending`: what the request needs."""

    delivery_id: int
    attempt: int
    url: str
    secrets: list[str]
    event_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered, or why it did not."""

    status: int | None
    body: str | None
    latency_ms: int
    error: str | None = None
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones; None when none is left."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return float(RETRY_SCHEDULE_SECONDS[attempts - 1])


def start(context: WorkerContext, delivery_id: int, now: datetime) -> Started | None:
    """Step 1; None when there is nothing to attempt (done, not due, or in other hands)."""
    with context.database.write() as (session, outbox):
        repository = WebhookRepository(session)
        row = repository.lock_delivery(delivery_id)
        if row is None:
            return None
        if row.status == WebhookDeliveryStatus.SENDING:
            if not repository.is_orphaned(delivery_id, now, context.settings):
                return None
        elif row.status != WebhookDeliveryStatus.PENDING:
            return None
        elif row.next_attempt_at is not None and row.next_attempt_at > now:
            outbox.add_webhook(delivery_id, row.next_attempt_at)
            return None
        endpoint = repository.endpoint_by_id(row.endpoint_id)
        assert endpoint is not None  # deleting an endpoint deletes its deliveries
        row.updated_at = now
        if not endpoint.enabled:
            row.status = WebhookDeliveryStatus.FAILED
            row.error = "the endpoint is disabled"
            row.sending_since = row.owner = row.next_attempt_at = None
            return None
        row.status = WebhookDeliveryStatus.SENDING
        row.attempts += 1
        row.sending_since = now
        row.owner = context.owner
        return Started(
            delivery_id=row.id,
            attempt=row.attempts,
            url=endpoint.url,
            secrets=signing_secrets(context.config_cipher, endpoint, now),
            event_id=row.event_id,
            body=row.body,
        )


def post(http: httpx.Client, started: Started, timeout: float) -> Answer:
    """Step 2: the signed request, within `timeout` (to connect, to send, to each read)."""
    body = started.body.encode()
    headers = signing.headers(started.secrets, started.event_id, int(time.time()), body)
    began = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - began) * 1000)

    try:
        with http.stream(
            "POST", started.url, content=body, headers=headers, timeout=timeout
        ) as response:
            excerpt = bytearray()
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
            return Answer(
                status=response.status_code,
                body=bytes(excerpt[:EXCERPT_BYTES]).decode("utf-8", "replace"),
                latency_ms=elapsed(),
            )
    except OutboundRefused as exc:
        return Answer(None, None, elapsed(), str(exc)[:ERROR_LENGTH], permanent=True)
    except httpx.TimeoutException:
        return Answer(None, None, elapsed(), f"no answer within {timeout:g} s (timed out)")
    except httpx.HTTPError as exc:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Answer(None, None, elapsed(), text[:ERROR_LENGTH])


def finish(context: WorkerContext, started: Started, answer: Answer, now: datetime) -> str:
    """Step 3: record the answer; schedule the retry, if any. Returns the status."""
    with context.database.write() as (session, outbox):
        row = WebhookRepository(session).lock_delivery(started.delivery_id)
        if row is None:
            return "missing"
        if row.status != WebhookDeliveryStatus.SENDING or row.attempts != started.attempt:
            return row.status  # re-driven meanwhile: the newer attempt records itself
        row.last_attempt_at = now
        row.response_status = answer.status
        row.response_body = answer.body
        row.response_ms = answer.latency_ms
        row.error = answer.error
        if answer.error is None and not answer.succeeded:
            row.error = f"answered {answer.status}: only a 2xx is a success"
        row.sending_since = None
        row.owner = None
        row.updated_at = now
        delay = None if answer.permanent else retry_delay(row.attempts)
        if answer.succeeded:
            row.status = WebhookDeliveryStatus.SUCCEEDED
            row.next_attempt_at = None
        elif delay is None:
            row.status = WebhookDeliveryStatus.FAILED
            row.next_attempt_at = None
        else:
            row.status = WebhookDeliveryStatus.PENDING
            row.next_attempt_at = now + timedelta(seconds=delay)
            outbox.add_webhook(row.id, row.next_attempt_at)
        return row.status


def attempt(context: WorkerContext, delivery_id: int, now: datetime | None = None) -> str | None:
    """One attempt, if the delivery is due (`now`, for tests, else the clock); its status
    afterwards, or None when there was nothing to attempt."""
    started = start(context, delivery_id, now or utcnow())
    if started is None:
        return None
    answer = post(context.http, started, context.settings.webhook_timeout_seconds)
    return finish(context, started, answer, now or utcnow())


def redrive(
    context: WorkerContext, due_before: datetime, unclaimed_since: datetime, limit: int
) -> int:
    """Claim, for a sweep, deliveries a lost job or a dead process left behind, and attempt
    them again once the claim commits; returns how many."""
    return redrive_attempts(
        context, WEBHOOK_ATTEMPTS, Outbox.add_webhook, due_before, unclaimed_since, limit
    )
