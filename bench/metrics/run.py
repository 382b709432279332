"""Message metrics at 1,000,000 messages: the reads of `GET /analytics/messages`, as ratios
to a floor, `SELECT count(*)` over the same messages.

In-process on a fresh SQLite data dir (the embedded default). It inserts `--messages`
messages spread over 30 days (bulk INSERTs on the driver's cursor: this measures reads, not
sends), with what the transitions would have counted in the `message_metric` rollup (an hour
per row, per template, automation, channel and metric), then times, median of `--repeat`:

- the floor: `SELECT count(*) FROM message`;
- `analytics.service.report` (what the endpoint calls: one read of the rollup, then the
  buckets, totals and funnel), 30 days by day: unfiltered, by template, by automation, by
  channel; and 24 hours by hour;
- for comparison, the same 30-day series computed from the messages themselves (GROUP BY
  day of `sent_at` over the table), which is what the rollup avoids;
- the send path's added statement (`count_delivery_on_cursor`), per call, with the rollup
  loaded.

It checks the report's totals against counts of the inserted messages, prints the figures
and exits 1 when the unfiltered 30-day report is over `--budget` times the floor.

    .venv/bin/python bench/metrics/run.py [--messages 1000000] [--repeat 20] [--budget 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tidings.analytics import service
from tidings.analytics.repository import count_delivery_on_cursor
from tidings.models import Metric

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import in_process

DAYS = 30
TEMPLATES = [f"template-{n:02d}" for n in range(20)]
# Each automation sends its own template; the other templates are sent through the API.
AUTOMATIONS = {f"automation-{n}": TEMPLATES[n] for n in range(4)}
CHUNK = 20_000
STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a datetime in SQLite

MESSAGE_SQL = (
    "INSERT INTO message (workspace_id, environment_id, message_id, request_id, status,"
    ' recipient, "to", notification_id, data, channels, providers, metadata, tags, output,'
    " source, timeout_at, enqueued_at, sent_at, delivered_at, opened_at, clicked_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, '{}', ?, '{}', '{}', '{}', '{}', '[]', '{}', ?,"
    " ?, ?, ?, ?, ?, ?, ?)"
)
METRIC_SQL = (
    "INSERT INTO message_metric (environment_id, span, bucket_start, template, automation,"
    " channel, metric, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def stored(at: datetime | None) -> str | None:
    return None if at is None else at.replace(tzinfo=None).strftime(STORED)


def build(connection: Any, workspace_id: str, environment_id: str, messages: int, end: datetime):  # type: ignore[no-untyped-def]
    """Insert the messages and their rollup rows; the expected totals per metric."""
    rng = random.Random(18)
    start = end - timedelta(days=DAYS)
    seconds = (end - start).total_seconds()
    rollup: Counter[tuple[str, str, str, str, str, str]] = Counter()
    cursor = connection.cursor()
    # One transaction (the driver connection is in autocommit mode: SQLAlchemy sends BEGIN).
    cursor.execute("BEGIN")
    rows: list[tuple[Any, ...]] = []
    for n in range(messages):
        sent = start + timedelta(seconds=rng.random() * seconds)
        automation = rng.choice(list(AUTOMATIONS)) if rng.random() < 0.3 else ""
        template = AUTOMATIONS[automation] if automation else rng.choice(TEMPLATES)
        channel = "sms" if rng.random() < 0.2 else "email"
        events: list[tuple[str, datetime]] = [(Metric.SENT, sent)]
        status, delivered, opened, clicked = "SENT", None, None, None
        roll = rng.random()
        if roll < 0.02:
            status = "BOUNCED"
            events.append((Metric.BOUNCED, sent + timedelta(seconds=30)))
        elif roll < 0.97:
            status, delivered = "DELIVERED", sent + timedelta(seconds=5)
            events.append((Metric.DELIVERED, delivered))
            if channel == "email" and rng.random() < 0.4:
                status, opened = "OPENED", sent + timedelta(minutes=rng.random() * 600)
                events.append((Metric.OPENED, opened))
                if rng.random() < 0.25:
                    status, clicked = "CLICKED", opened + timedelta(seconds=20)
                    events.append((Metric.CLICKED, clicked))
            if rng.random() < 0.001:
                status = "COMPLAINED"
                events.append((Metric.COMPLAINED, sent + timedelta(hours=1)))
            if rng.random() < 0.002:
                events.append((Metric.UNSUBSCRIBED, sent + timedelta(hours=2)))
        source = (
            json.dumps({"run_id": f"run-{n}", "automation_id": automation}) if automation else "{}"
        )
        rows.append(
            (
                workspace_id,
                environment_id,
                f"msg-bench-{n}",
                f"req-bench-{n}",
                status,
                f"user-{n % 50_000}",
                template,
                source,
                stored(sent + timedelta(days=1)),
                stored(sent - timedelta(seconds=1)),
                stored(sent),
                stored(delivered),
                stored(opened),
                stored(clicked),
                stored(sent),
            )
        )
        for metric, at in events:
            if at < end:
                hour = at.replace(minute=0, second=0, microsecond=0)
                for span, bucket in (("hour", hour), ("day", hour.replace(hour=0))):
                    rollup[(span, stored(bucket) or "", template, automation, channel, metric)] += 1
        if len(rows) == CHUNK:
            cursor.executemany(MESSAGE_SQL, rows)
            rows = []
    cursor.executemany(MESSAGE_SQL, rows)
    cursor.executemany(
        METRIC_SQL, [(environment_id, *key, count) for key, count in sorted(rollup.items())]
    )
    cursor.close()
    totals: Counter[str] = Counter()
    for (span, *_key, metric), count in rollup.items():
        if span == "day":
            totals[metric] += count
    return dict(totals), len(rollup)


def median_seconds(work: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    # The end of the period: the next midnight, so that 30 days by day is exactly the data.
    now = datetime.now(UTC)
    end = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    with (
        tempfile.TemporaryDirectory(prefix="tidings-bench-metrics-") as data_dir,
        in_process(Path(data_dir)) as tidings,
    ):
        runtime = tidings.runtime
        workspace_id, environment_id = tidings.scope.workspace_id, tidings.scope.environment_id
        engine = runtime.database.engine
        started = time.perf_counter()
        raw = engine.raw_connection()
        try:
            expected, rollup_rows = build(
                raw.driver_connection, workspace_id, environment_id, args.messages, end
            )
            raw.driver_connection.execute("COMMIT")
            raw.driver_connection.execute("ANALYZE")
        finally:
            raw.close()
        result: dict[str, Any] = {
            "messages": args.messages,
            "rollup_rows": rollup_rows,
            "build_s": round(time.perf_counter() - started, 1),
            "repeat": args.repeat,
        }

        def report(**filters: Any) -> Callable[[], service.MetricsReport]:
            query = service.MetricsQuery(
                end=end.isoformat(), interval=filters.pop("interval", "day"), **filters
            )

            def run() -> service.MetricsReport:
                with runtime.database.read() as session:
                    return service.report(session, environment_id, query, now)

            return run

        # Verification: the report's totals are the inserted messages' transitions.
        found = report()()
        if found.totals != {metric: expected.get(metric, 0) for metric in Metric.ALL}:
            raise SystemExit(f"totals {found.totals} != expected {expected}")
        with engine.connect() as connection:
            sent = connection.exec_driver_sql(
                "SELECT count(*) FROM message WHERE sent_at IS NOT NULL"
            ).scalar_one()
        if found.totals[Metric.SENT] != sent:
            raise SystemExit(f"sent {found.totals[Metric.SENT]} != {sent} messages")
        result["totals"] = found.totals

        def floor() -> None:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT count(*) FROM message").scalar_one()

        def from_messages() -> None:
            with engine.connect() as connection:
                connection.exec_driver_sql(
                    "SELECT substr(sent_at, 1, 10), count(*), count(delivered_at),"
                    " count(opened_at), count(clicked_at) FROM message"
                    " WHERE environment_id = ? AND sent_at >= ? GROUP BY 1",
                    (environment_id, stored(end - timedelta(days=DAYS))),
                ).all()

        timings = {
            "floor_count_messages": floor,
            "report_30_days_by_day": report(),
            "report_30_days_by_day_template": report(template=TEMPLATES[0]),
            "report_30_days_by_day_automation": report(automation="automation-1"),
            "report_30_days_by_day_channel": report(channel="sms"),
            "report_24_hours_by_hour": report(
                interval="hour", start=(end - timedelta(days=1)).isoformat()
            ),
            "series_from_messages_30_days": from_messages,
        }
        seconds = {name: median_seconds(work, args.repeat) for name, work in timings.items()}
        result["seconds"] = {name: round(value, 5) for name, value in seconds.items()}
        result["ratio_to_floor"] = {
            name: round(value / seconds["floor_count_messages"], 3)
            for name, value in seconds.items()
        }

        # The send path's added statement, with the rollup loaded: a message and its
        # delivery, counted again and again in one transaction, rolled back.
        with engine.connect() as connection:
            message_pk = connection.exec_driver_sql(
                "SELECT id FROM message WHERE notification_id = ? LIMIT 1", (TEMPLATES[0],)
            ).scalar_one()
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO message_delivery (message_pk, environment_id, channel, providers,"
                " provider_index, provider, status, attempts, provider_attempts, updated_at)"
                " VALUES (?, ?, 'email', '[]', 0, 'smtp', 'sending', 0, 0, ?)",
                (message_pk, environment_id, stored(now)),
            )
            delivery_id = cursor.lastrowid
            calls = 5_000
            started = time.perf_counter()
            for _ in range(calls):
                count_delivery_on_cursor(cursor, engine.dialect, delivery_id, Metric.SENT, now)
            result["send_path_increment_us"] = round(
                (time.perf_counter() - started) / calls * 1e6, 1
            )
            cursor.execute("ROLLBACK")
            cursor.close()
        finally:
            raw.close()

    print(json.dumps(result, indent=2))
    ratio = result["ratio_to_floor"]["report_30_days_by_day"]
    return 0 if ratio <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
