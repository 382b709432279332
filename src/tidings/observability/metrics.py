"""Prometheus metrics: counters kept in this process, and the queue backlog read at scrape.

This module imports nothing of Tidings, so that every domain can count here. The counters
count what this process did: with several processes (API replicas, workers)
each has its own, and Prometheus sums them across its targets (scrape every process, or
read `sum by (...)`). The backlog is read from the database at scrape time, so every
process reports the same backlog: aggregate it with `max`, not `sum`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

EVENTS_RECEIVED = Counter(
    "tidings_events_received",
    "Events ingested, by outcome: accepted (stored) or duplicate (a messageId seen before).",
    ["outcome"],
    registry=REGISTRY,
)
_ACCEPTED = EVENTS_RECEIVED.labels("accepted")
_DUPLICATE = EVENTS_RECEIVED.labels("duplicate")
EVENTS_PROCESSED = Counter(
    "tidings_events_processed",
    "Events processed, by what came of it: processed, retry (failed, to be tried again) or "
    "failed (out of attempts).",
    ["status"],
    registry=REGISTRY,
)
_PROCESSED = {
    status: EVENTS_PROCESSED.labels(status) for status in ("processed", "retry", "failed")
}
MESSAGES = Counter(
    "tidings_messages",
    "Message outcomes, by status and provider: SENT, PROVIDER_ERROR or UNKNOWN_OUTCOME of a "
    "provider attempt; the ends routing decides (UNROUTABLE, FILTERED, …; provider empty); "
    "what a provider's status callback moved the message to (DELIVERED, BOUNCED, …).",
    ["status", "provider"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "tidings_provider_latency_seconds",
    "How long each provider call took, whatever its outcome.",
    ["provider", "channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
RENDER_FAILURES = Counter(
    "tidings_render_failures",
    "Channels whose template failed to render (an error in the template, or over a limit).",
    ["channel"],
    registry=REGISTRY,
)


def events_received(accepted: int, duplicates: int) -> None:
    if accepted:
        _ACCEPTED.inc(accepted)
    if duplicates:
        _DUPLICATE.inc(duplicates)


def events_processed(processed: int, retry: int, failed: int) -> None:
    for status, count in (("processed", processed), ("retry", retry), ("failed", failed)):
        if count:
            _PROCESSED[status].inc(count)


def message_outcome(status: str, provider: str | None) -> None:
    MESSAGES.labels(status, provider or "").inc()


def provider_call(provider: str, channel: str, seconds: float) -> None:
    PROVIDER_LATENCY.labels(provider, channel).observe(seconds)


def render_failures(failures: Iterable[dict[str, object]]) -> None:
    for failure in failures:
        RENDER_FAILURES.labels(str(failure.get("channel", ""))).inc()
