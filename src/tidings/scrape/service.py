"""The scrape: this process's counters (observability/metrics.py) and the backlog read from
the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tidings.db import Database
from tidings.eventstore.repository import EventRepository
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.observability.metrics import REGISTRY

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _age(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class Backlog(Collector):
    """The work waiting, read from the database at each scrape: events still `received` and
    messages ENQUEUED, how many and how long the oldest has waited (0 when none)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        with self.database.read() as session:
            events, oldest_event = EventRepository(session).backlog()
            messages, oldest_message = MessageRepository(session).backlog()
        now = utcnow()
        for name, count, oldest, what, waited in (
            (
                "events",
                events,
                oldest_event,
                "Events stored and not processed yet.",
                "How long the oldest event not processed yet has waited.",
            ),
            (
                "messages",
                messages,
                oldest_message,
                "Messages ENQUEUED, waiting to be routed.",
                "How long the oldest ENQUEUED message has waited.",
            ),
        ):
            yield GaugeMetricFamily(f"tidings_{name}_backlog", what, value=count)
            yield GaugeMetricFamily(
                f"tidings_{name}_backlog_age_seconds", waited, value=_age(oldest, now)
            )


class Everything(Collector):
    """This process's counters, then the backlog."""

    def __init__(self, database: Database) -> None:
        self.backlog = Backlog(database)

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.backlog.collect()


def registry_for(database: Database) -> CollectorRegistry:
    """What a scrape reads, the `/metrics` route's and the metrics port's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Everything(database))
    return registry


def exposition(database: Database) -> bytes:
    """The text a scrape answers."""
    return generate_latest(registry_for(database))
