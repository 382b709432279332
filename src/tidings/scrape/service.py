"""The scrape: this process's counters (observability/metrics.py) and the backlog read from
the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
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


class WriteLockUse(Collector):
    """On SQLite, how this process's threads used its one write lock (`db.WriteLock`), by
    kind of thread: acquisitions, and seconds waited for it and held. Held seconds per
    second near 1 mean the writer is the bottleneck: every write waits its turn."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        lock = self.database.write_lock
        if lock is None:
            return
        families = (
            CounterMetricFamily(
                "tidings_write_lock_acquisitions",
                "Times a thread of this process took SQLite's write lock, by kind of thread.",
                labels=["thread"],
            ),
            CounterMetricFamily(
                "tidings_write_lock_wait_seconds",
                "Seconds threads of this process waited for SQLite's write lock.",
                labels=["thread"],
            ),
            CounterMetricFamily(
                "tidings_write_lock_held_seconds",
                "Seconds threads of this process held SQLite's write lock.",
                labels=["thread"],
            ),
        )
        acquisitions, waited, held = families
        for kind, use in sorted(lock.use().items()):
            acquisitions.add_metric([kind], use.acquisitions)
            waited.add_metric([kind], use.waited)
            held.add_metric([kind], use.held)
        yield from families


class Everything(Collector):
    """This process's counters, its use of the write lock, then the backlog."""

    def __init__(self, database: Database) -> None:
        self.write_lock = WriteLockUse(database)
        self.backlog = Backlog(database)

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.write_lock.collect()
        yield from self.backlog.collect()


def registry_for(database: Database) -> CollectorRegistry:
    """What a scrape reads, the `/metrics` route's and the metrics port's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Everything(database))
    return registry


def exposition(database: Database) -> bytes:
    """The text a scrape answers."""
    return generate_latest(registry_for(database))
