"""A schedule trigger against a live `tidings serve` with real emails: a Monday 09:00 (Paris)
digest to a list, fired for a chosen Monday on the schedules' clock (and not for the Sunday
before), and workers killed mid-tick (on Postgres inside the fire transaction too, then
while the tick's runs send), then restarted: the tick is fired once, and each subscriber
gets one email."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from tests import processes
from tests.conftest import Serve, Worker, wait_for
from tests.e2e.test_automations import Call, _client
from tests.smtp_sink import SmtpSink
from tidings.automation import schedules
from tidings.config import Settings
from tidings.kit.time import utcnow
from tidings.kit.windows import zone_named
from tidings.models import AutomationSchedule
from tidings.runtime import Runtime

SUBSCRIBERS = ("ada", "grace", "linus")
DIGEST = {
    "name": "Weekly digest",
    "triggers": [
        {
            "source": "schedule",
            "cron": "0 9 * * MON",
            "timezone": "Europe/Paris",
            "list_id": "weekly-digest",
            "data": {"edition": "weekly"},
        }
    ],
    "steps": [
        {
            "action": "send",
            "content": {
                "title": "Your {{ data.edition }} digest, {{ profile.name }}",
                "body": "Tick {{ event.tick }}",
            },
        }
    ],
}


def _setup(call: Call, smtp_sink: SmtpSink) -> None:
    """Through the HTTP API: the SMTP provider, the profiles, the list and the automation."""
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    for user in SUBSCRIBERS:
        profile = {"email": f"{user}@example.org", "name": user}
        call("POST", f"/profiles/{user}", {"profile": profile})
        call("PUT", f"/lists/weekly-digest/subscriptions/{user}")
    call("PUT", "/automations/weekly-digest", DIGEST)


def _next_tick(runtime: Runtime) -> datetime:
    with runtime.database.read() as session:
        tick: datetime = session.scalars(select(AutomationSchedule.next_fire_at)).one()
    return tick


def _runs(call: Call) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = call("GET", "/automations/runs").json()["runs"]
    return found


def _processed(call: Call, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found = _runs(call)
        done = [run for run in found if run["status"] == "PROCESSED"]
        return done if len(done) == count else None

    return wait_for(check, what=f"{count} processed runs")


def _one_email_each(smtp_sink: SmtpSink) -> None:
    wait_for(lambda: len(smtp_sink.messages) >= len(SUBSCRIBERS), what="the digests")
    assert sorted(email["To"] for email in smtp_sink.messages) == [
        f"{user}@example.org" for user in SUBSCRIBERS
    ]


def test_a_monday_schedule_emails_the_list_at_its_tick_and_not_on_sunday(
    serve: Serve, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    _setup(call, smtp_sink)
    # The next Monday 09:00 in Paris after the save.
    monday = _next_tick(runtime)
    assert monday == schedules.next_tick(DIGEST["triggers"][0], utcnow())  # type: ignore[index]
    local = monday.astimezone(zone_named("Europe/Paris"))
    assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 9, 0)

    # The schedules' clock on the Sunday before, at 09:00 and late in the evening: nothing.
    for sunday in (monday - timedelta(days=1), monday - timedelta(minutes=1)):
        assert schedules.fire_due(runtime.database, sunday) == 0
    assert _runs(call) == []

    # Monday 09:00: one run per subscriber, each sending its email through the server.
    assert schedules.fire_due(runtime.database, monday) == len(SUBSCRIBERS)
    runs = _processed(call, len(SUBSCRIBERS))
    assert sorted(run["recipient"] for run in runs) == sorted(SUBSCRIBERS)
    assert {tuple(run["source"]) for run in runs} == {("schedule/0 9 * * MON",)}
    assert {run["template_id"] for run in runs} == {"weekly-digest"}
    _one_email_each(smtp_sink)
    subjects = sorted(email["Subject"] for email in smtp_sink.messages)
    assert subjects == [f"Your weekly digest, {user}" for user in SUBSCRIBERS]

    # The same tick again, a minute later: fired already. The next one is a week later.
    assert schedules.fire_due(runtime.database, monday + timedelta(minutes=1)) == 0
    assert _next_tick(runtime) == monday + timedelta(days=7)
    assert len(_runs(call)) == len(SUBSCRIBERS)
    assert len(smtp_sink.messages) == len(SUBSCRIBERS)


def _killed_inside_the_fire_transaction(
    worker: Worker, runtime: Runtime, call: Call, missed: datetime
) -> None:
    """Postgres: a worker killed inside its fire transaction, after it claimed the tick and
    while it starts the runs (their inserts wait for a lock this test holds on the
    automation's version row): nothing of the tick is committed, and it is still due."""
    with runtime.database.engine.connect() as holder:
        holder.execute(text("SELECT id FROM automation_version FOR UPDATE"))
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def blocked() -> bool:
            with runtime.database.engine.connect() as watcher:
                waiting = watcher.execute(
                    text(
                        "SELECT query FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": holder_pid},
                ).scalars()
                return any("INSERT INTO automation_run" in query for query in waiting)

        stuck = worker("worker-0.log")
        wait_for(blocked, what="the worker to wait inside its fire transaction")
        processes.kill(stuck)
        holder.rollback()
    assert _runs(call) == []
    assert _next_tick(runtime) == missed


def test_a_worker_killed_while_a_missed_tick_sends_then_restarted_fires_it_once(
    serve: Serve, worker: Worker, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    # Every SMTP conversation of the first worker hangs: it is killed inside a send of the
    # tick, with nothing delivered.
    smtp_sink.handler.ehlo_holds.extend(threading.Event() for _ in SUBSCRIBERS)
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    call = _client(settings, server)
    _setup(call, smtp_sink)
    # No worker ran at the last Monday 09:00 (Paris): the tick was missed.
    missed = _next_tick(runtime) - timedelta(days=7)
    with runtime.database.write() as (session, _):
        session.execute(update(AutomationSchedule).values(next_fire_at=missed))

    if not runtime.database.is_sqlite:
        _killed_inside_the_fire_transaction(worker, runtime, call, missed)

    # The worker fires the missed tick when its consumer starts, then sends.
    first = worker("worker-1.log", TIDINGS_SENDING_STALE_SECONDS="1")
    wait_for(smtp_sink.handler.ehlo_started.is_set, what="the worker to start a digest's send")
    processes.kill(first)
    smtp_sink.handler.ehlo_holds.clear()  # the next worker's conversations go through
    assert smtp_sink.messages == []
    fired = _runs(call)
    assert sorted(run["recipient"] for run in fired) == sorted(SUBSCRIBERS)
    assert _next_tick(runtime) == missed + timedelta(days=7)

    time.sleep(1.2)  # past TIDINGS_SENDING_STALE_SECONDS since the killed worker's last write
    worker("worker-2.log", TIDINGS_SENDING_STALE_SECONDS="1")
    # The restarted worker finds the tick fired: no new runs; the killed send is re-driven.
    runs = _processed(call, len(SUBSCRIBERS))
    assert sorted(run["run_id"] for run in runs) == sorted(run["run_id"] for run in fired)
    _one_email_each(smtp_sink)
    with runtime.database.read() as session:
        row = session.scalars(select(AutomationSchedule)).one()
        assert (row.last_tick, row.firing_tick) == (missed, None)
    assert len(_runs(call)) == len(SUBSCRIBERS)
    assert len(smtp_sink.messages) == len(SUBSCRIBERS)
