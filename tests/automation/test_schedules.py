"""Schedule triggers: validation with exact field paths, the ticks in a time zone (daylight
saving time included), the rows kept in step with the automation's saves, firing on a
controllable clock, missed ticks, lists in chunks, a crash mid-fire, and two processes that
never fire one tick twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.automation.test_runs import Killed
from tests.automation.test_steps import validate
from tests.conftest import Keys, bearer, run_cli
from tidings.audience import service as audience_service
from tidings.automation import membership, schedules
from tidings.automation import service as automation_service
from tidings.automation.repository import ScheduleRepository
from tidings.automation.service import DefinitionError
from tidings.config import Settings
from tidings.kit.time import utcnow
from tidings.kit.windows import zone_named
from tidings.list import service as list_service
from tidings.models import AutomationRun, AutomationSchedule
from tidings.runtime import Runtime
from tidings.workspace.service import Scope, resolve_keys

PARIS = "Europe/Paris"
# Saved on a Sunday; the first tick of "0 9 * * MON" in Paris is the next day, 08:00 UTC.
SAVED = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)
MONDAY = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
SUNDAY = datetime(2030, 1, 6, 20, 0, tzinfo=UTC)
STEPS = [{"action": "update-profile", "profile": {"ticked": True}, "merge": "overwrite"}]


def schedule(**fields: Any) -> dict[str, Any]:
    return {"source": "schedule", "cron": "0 9 * * MON", "timezone": PARIS, **fields}


FIELD_PATHS = [
    (schedule(cron=None, recipient="u1"), "triggers[0].cron", "needs a cron expression"),
    (schedule(cron="0 9 * *", recipient="u1"), "triggers[0].cron", '"0 9 * *" has 4 fields'),
    (schedule(cron="0 0 9 * * MON", recipient="u1"), "triggers[0].cron", "has 6 fields"),
    (
        schedule(cron="0 9 * * FUN", recipient="u1"),
        "triggers[0].cron",
        "is not a cron expression (bad day-of-week); use five fields, minute hour",
    ),
    (schedule(cron="0 25 * * *", recipient="u1"), "triggers[0].cron", "(bad hour)"),
    (
        schedule(timezone="Europe/Pariss", recipient="u1"),
        "triggers[0].timezone",
        '"Europe/Pariss" is not an IANA time zone; give one such as "Europe/Paris"',
    ),
    (schedule(), "triggers[0]", "give exactly one of list_id"),
    (schedule(list_id="a", recipient="u1"), "triggers[0].recipient", "exactly one of"),
    (schedule(recipient=""), "triggers[0].recipient", "must be a non-empty string"),
    (schedule(list_id="a b"), "triggers[0].list_id", "contains a space"),
    (schedule(recipient="u" * 301), "triggers[0].recipient", "must be 1 to 300 characters"),
    (schedule(audience_id="vips", recipient="u1"), "triggers[0].recipient", "exactly one of"),
    (schedule(audience_id="no such"), "triggers[0].audience_id", "is not an audience id"),
    (schedule(recipient="u1", data=[1]), "triggers[0].data", "must be an object"),
    (schedule(recipient="u1", event="x"), "triggers[0].event", '"event" is not a field of a '),
]


@pytest.mark.parametrize(("trigger", "field", "message"), FIELD_PATHS)
def test_a_schedule_triggers_errors_name_the_exact_field_path(
    trigger: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate(*STEPS, triggers=[trigger])
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert message in caught.value.message


def test_a_schedule_trigger_is_stored_normalized() -> None:
    saved = validate(
        *STEPS,
        triggers=[
            {"source": "segment", "event": "identify"},
            {"source": "schedule", "cron": " 0  9 * *  MON ", "recipient": "u1"},
        ],
    )
    assert saved["triggers"][1] == {
        "source": "schedule",
        "cron": "0 9 * * MON",
        "timezone": "UTC",
        "recipient": "u1",
        "data": {},
    }
    with pytest.raises(DefinitionError) as caught:
        validate(*STEPS, triggers=[schedule(recipient="u1"), schedule(recipient="u1")])
    assert caught.value.field == "triggers[1]"


def _paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=zone_named(PARIS))  # type: ignore[misc]


def test_ticks_follow_the_wall_clock_of_their_zone_across_daylight_saving_time() -> None:
    monday = schedule(recipient="u1")
    assert schedules.next_tick(monday, SAVED) == MONDAY
    assert schedules.next_tick(monday, MONDAY) == MONDAY + timedelta(days=7)
    assert schedules.latest_tick(monday, MONDAY) == MONDAY
    assert schedules.latest_tick(monday, MONDAY - timedelta(seconds=1)) == MONDAY - timedelta(
        days=7
    )
    # Summer time: 09:00 in Paris is 07:00 UTC.
    assert schedules.next_tick(monday, datetime(2030, 6, 1, tzinfo=UTC)) == datetime(
        2030, 6, 3, 7, 0, tzinfo=UTC
    )
    # Spring forward (31 March 2030): 02:30 does not exist; the tick fires at 03:00.
    nightly = schedule(cron="30 2 * * *", recipient="u1")
    spring = schedules.next_tick(nightly, _paris(2030, 3, 30, 12, 0))
    assert spring == _paris(2030, 3, 31, 3, 0).astimezone(UTC)
    # Fall back (27 October 2030): 02:30 happens twice; the tick fires once, the first time.
    autumn = schedules.next_tick(nightly, _paris(2030, 10, 26, 12, 0))
    assert autumn == datetime(2030, 10, 27, 0, 30, tzinfo=UTC)
    assert schedules.next_tick(nightly, autumn) == datetime(2030, 10, 28, 1, 30, tzinfo=UTC)
    # An every-30-minutes schedule fires in both occurrences of the repeated hour.
    halves = schedule(cron="*/30 * * * *", recipient="u1")
    at, ticks = datetime(2030, 10, 26, 23, 50, tzinfo=UTC), []
    for _ in range(5):
        at = schedules.next_tick(halves, at)
        ticks.append(at.strftime("%H:%M"))
    assert ticks == ["00:00", "00:30", "01:00", "01:30", "02:00"]


class Clock:
    """The schedules' clock for saves (`schedules.utcnow`), moved by the test."""

    def __init__(self) -> None:
        self.now = SAVED

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(schedules, "utcnow", clock)
    return clock


@pytest.fixture
def scope(runtime: Runtime, keys: Keys) -> Scope:
    with runtime.database.read() as session:
        return resolve_keys(session, runtime.cipher, [keys.test])[keys.test]


def save(runtime: Runtime, scope: Scope, automation_id: str = "weekly", **body: Any) -> int:
    definition = {"triggers": [schedule(recipient="u1")], "steps": STEPS, **body}
    with runtime.database.write() as (session, _):
        _, version, _ = automation_service.save(
            session, scope, automation_id, definition, outbound=runtime.outbound
        )
        return version.version


def rows(runtime: Runtime) -> list[tuple[str, datetime, datetime | None]]:
    with runtime.database.read() as session:
        found = session.scalars(select(AutomationSchedule).order_by(AutomationSchedule.id))
        return [(schedules.describe(row.trigger), row.next_fire_at, row.last_tick) for row in found]


def started(runtime: Runtime) -> list[AutomationRun]:
    with runtime.database.read() as session:
        return list(session.scalars(select(AutomationRun).order_by(AutomationRun.id)))


def test_the_rows_follow_saves_enable_disable_delete_and_restore(
    runtime: Runtime, scope: Scope, clock: Clock
) -> None:
    save(runtime, scope)
    assert rows(runtime) == [("0 9 * * MON Europe/Paris → recipient u1", MONDAY, None)]
    # A save that keeps the trigger keeps its tick, even one that is due and not fired yet.
    clock.now = MONDAY + timedelta(minutes=1)
    save(runtime, scope, name="Weekly, renamed")
    assert rows(runtime) == [("0 9 * * MON Europe/Paris → recipient u1", MONDAY, None)]
    # A new cron is a new trigger: its first tick is after the save.
    save(runtime, scope, triggers=[schedule(cron="0 10 * * MON", recipient="u1")])
    assert rows(runtime) == [
        ("0 10 * * MON Europe/Paris → recipient u1", MONDAY + timedelta(hours=1), None)
    ]
    save(runtime, scope, triggers=[schedule(cron="0 10 * * MON", recipient="u1")], enabled=False)
    assert rows(runtime) == []
    save(runtime, scope, triggers=[schedule(cron="0 10 * * MON", recipient="u1")])
    assert len(rows(runtime)) == 1
    with runtime.database.write() as (session, _):
        automation_service.restore(session, scope, "weekly", 1, outbound=runtime.outbound)
    assert [row[0] for row in rows(runtime)] == ["0 9 * * MON Europe/Paris → recipient u1"]
    with runtime.database.write() as (session, _):
        automation_service.delete(session, scope, "weekly")
    assert rows(runtime) == []
    # Saved again after the delete: live again, with its schedule.
    save(runtime, scope)
    assert len(rows(runtime)) == 1


def test_a_tick_fires_once_at_its_time_in_its_zone(
    runtime: Runtime, scope: Scope, clock: Clock
) -> None:
    save(runtime, scope, triggers=[schedule(recipient="u1", data={"digest": "weekly"})])
    # Sunday evening: nothing is due.
    assert schedules.fire_due(runtime.database, SUNDAY) == 0
    assert started(runtime) == []
    assert schedules.fire_due(runtime.database, MONDAY) == 1
    (run,) = started(runtime)
    assert run.source == "schedule/0 9 * * MON"
    assert run.recipient == "u1"
    assert run.automation_id == "weekly"
    assert run.context["data"] == {"digest": "weekly"}
    assert run.context["event"] == {
        "source": "schedule",
        "cron": "0 9 * * MON",
        "timezone": PARIS,
        "tick": "2030-01-07T08:00:00Z",
    }
    # The same tick again, a minute later: fired already.
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(minutes=1)) == 0
    next_monday = MONDAY + timedelta(days=7)
    assert rows(runtime)[0][1:] == (next_monday, MONDAY)
    assert schedules.fire_due(runtime.database, next_monday) == 1
    assert len(started(runtime)) == 2


def test_missed_ticks_fire_once_for_the_latest_then_the_next_is_in_the_future(
    runtime: Runtime, scope: Scope, clock: Clock
) -> None:
    save(runtime, scope)
    # Down for three weeks and a day: three Mondays were missed.
    back = MONDAY + timedelta(days=15)
    assert schedules.fire_due(runtime.database, back) == 1
    (run,) = started(runtime)
    assert run.context["event"]["tick"] == "2030-01-21T08:00:00Z"
    assert rows(runtime)[0][1:] == (MONDAY + timedelta(days=21), MONDAY + timedelta(days=14))
    assert schedules.fire_due(runtime.database, back) == 0


def test_a_disabled_automation_fires_nothing(runtime: Runtime, scope: Scope, clock: Clock) -> None:
    save(runtime, scope, enabled=False)
    assert schedules.fire_due(runtime.database, MONDAY) == 0
    # Enabled after its tick: the tick while it was disabled is not fired.
    clock.now = MONDAY + timedelta(hours=1)
    save(runtime, scope)
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(hours=2)) == 0
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(days=7)) == 1


def subscribe(runtime: Runtime, scope: Scope, count: int) -> list[str]:
    users = [f"user-{number}" for number in range(count)]
    with runtime.database.write() as (session, _):
        list_service.add_subscribers(
            session, scope, "digest", [list_service.SubscriberSpec(user) for user in users]
        )
    return users


def test_a_list_target_starts_one_run_per_subscriber_in_chunks(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "CHUNK", 2)
    users = subscribe(runtime, scope, 5)
    save(runtime, scope, triggers=[schedule(list_id="digest")])
    assert schedules.fire_due(runtime.database, MONDAY) == 5
    assert sorted(run.recipient or "" for run in started(runtime)) == users
    with runtime.database.read() as session:
        row = session.scalars(select(AutomationSchedule)).one()
        assert (row.firing_tick, row.firing_after) == (None, None)
    assert schedules.fire_due(runtime.database, MONDAY) == 0


def test_an_audience_target_starts_one_run_per_current_member_in_chunks(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "CHUNK", 2)
    subscribe(runtime, scope, 5)
    with runtime.database.write() as (session, outbox):
        audience, _ = audience_service.put_audience(
            session,
            outbox,
            scope,
            "digest-readers",
            audience_service.AudienceInput("Digest", None, {"list": "digest"}, None, None),
        )
        audience_pk = audience.id
    assert membership.scan(runtime.database, audience_pk)
    with runtime.database.write() as (session, _):
        list_service.unsubscribe(session, scope, "digest", "user-3")
    save(runtime, scope, triggers=[schedule(audience_id="digest-readers")])
    assert rows(runtime)[0][0] == "0 9 * * MON Europe/Paris → audience digest-readers"
    assert schedules.fire_due(runtime.database, MONDAY) == 4
    assert sorted(run.recipient or "" for run in started(runtime)) == [
        "user-0",
        "user-1",
        "user-2",
        "user-4",
    ]
    assert schedules.fire_due(runtime.database, MONDAY) == 0


def test_a_crash_mid_fire_neither_loses_nor_repeats_a_run_of_the_tick(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "CHUNK", 2)
    users = subscribe(runtime, scope, 5)
    save(runtime, scope, triggers=[schedule(list_id="digest")])
    real_start = schedules.start_automation_run
    calls = 0

    def crash_on_the_fourth(*args: Any, **kwargs: Any) -> AutomationRun:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise Killed
        return real_start(*args, **kwargs)

    # The process dies while starting the second chunk's runs: the first chunk is committed,
    # the second rolled back.
    with monkeypatch.context() as patch:
        patch.setattr(schedules, "start_automation_run", crash_on_the_fourth)
        with pytest.raises(Killed):
            schedules.fire_due(runtime.database, MONDAY)
    assert sorted(run.recipient or "" for run in started(runtime)) == users[:2]
    with runtime.database.read() as session:
        row = session.scalars(select(AutomationSchedule)).one()
        assert row.firing_tick == MONDAY
        assert row.next_fire_at == MONDAY + timedelta(days=7)

    # Restarted (the sweeper at a consumer's start, a little later): the tick carries on from
    # the last committed chunk, and each subscriber has one run of the tick.
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(minutes=3)) == 3
    assert sorted(run.recipient or "" for run in started(runtime)) == users
    assert {run.context["event"]["tick"] for run in started(runtime)} == {"2030-01-07T08:00:00Z"}
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(minutes=4)) == 0


def test_a_crash_before_the_first_commit_leaves_the_tick_due(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(runtime, scope)

    def crash(*args: Any, **kwargs: Any) -> AutomationRun:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(schedules, "start_automation_run", crash)
        with pytest.raises(Killed):
            schedules.fire_due(runtime.database, MONDAY)
    assert started(runtime) == []
    assert rows(runtime)[0][1:] == (MONDAY, None)
    assert schedules.fire_due(runtime.database, MONDAY + timedelta(minutes=1)) == 1


def test_a_failing_schedule_does_not_hold_up_the_others(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(runtime, scope, "first")
    save(runtime, scope, "second")
    real_start = schedules.start_automation_run

    def fail_first(*args: Any, **kwargs: Any) -> AutomationRun:
        if args[1].automation_id == "first":
            raise RuntimeError("the database went away")
        return real_start(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(schedules, "start_automation_run", fail_first)
        assert schedules.fire_due(runtime.database, MONDAY) == 1
    assert schedules.fire_due(runtime.database, MONDAY) == 1
    assert sorted(run.automation_id or "" for run in started(runtime)) == ["first", "second"]


def test_two_processes_firing_at_once_start_each_tick_once(
    runtime: Runtime, scope: Scope, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedules, "CHUNK", 3)
    users = subscribe(runtime, scope, 10)
    save(runtime, scope, "to-list", triggers=[schedule(list_id="digest")])
    save(runtime, scope, "to-one")
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def fire() -> None:
        try:
            barrier.wait()
            counts.append(schedules.fire_due(runtime.database, MONDAY))
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(counts) == 11
    by_recipient = Counter((run.automation_id, run.recipient) for run in started(runtime))
    assert by_recipient == Counter([("to-list", user) for user in users] + [("to-one", "u1")])


def test_the_claim_is_a_compare_and_set_of_the_due_tick(
    runtime: Runtime, scope: Scope, clock: Clock
) -> None:
    """Two transactions that read the same due tick, the second claiming while the first
    has claimed and not committed: the second waits for the first (Postgres: its row lock;
    SQLite: the write lock), then finds the tick moved."""
    save(runtime, scope)
    with runtime.database.read() as session:
        pk, due = session.execute(
            select(AutomationSchedule.id, AutomationSchedule.next_fire_at)
        ).one()
    expected = {"next_fire_at": due, "firing_tick": None}
    later = due + timedelta(days=7)
    second: list[bool] = []
    done = threading.Event()

    def claim_too() -> None:
        with runtime.database.write() as (session, _):
            second.append(ScheduleRepository(session).claim(pk, expected, next_fire_at=later))
        done.set()

    with runtime.database.write() as (session, _):
        assert ScheduleRepository(session).claim(pk, expected, next_fire_at=later)
        thread = threading.Thread(target=claim_too)
        thread.start()
        assert not done.is_set()  # it cannot finish before this transaction commits
    thread.join()
    assert second == [False]


def test_the_runs_api_lists_a_scheduled_run_with_its_source(
    client: TestClient, runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    response = client.put(
        "/automations/weekly",
        json={"triggers": [schedule(recipient="u1")], "steps": STEPS},
        headers=bearer(keys.test),
    )
    assert response.status_code == 201, response.text
    assert response.json()["triggers"] == [
        {**schedule(recipient="u1"), "data": {}},
    ]
    assert schedules.fire_due(runtime.database, MONDAY) == 1
    (run,) = client.get("/automations/runs", headers=bearer(keys.test)).json()["runs"]
    assert run["source"] == ["schedule/0 9 * * MON"]
    assert run["template_id"] == "weekly"
    assert run["recipient"] == "u1"


def test_an_invalid_schedule_is_a_400_at_its_field(client: TestClient, keys: Keys) -> None:
    response = client.put(
        "/automations/weekly",
        json={"triggers": [schedule(recipient="u1", timezone="Mars/Olympus")], "steps": STEPS},
        headers=bearer(keys.test),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "triggers[0].timezone"
    assert '"Mars/Olympus" is not an IANA time zone' in body["message"]


SCHEDULED = """\
kind: automation
id: weekly-digest
triggers:
  - source: schedule
    cron: "0 9 * * MON"
    timezone: Europe/Paris
    list_id: digest
    data: {edition: weekly}
steps:
  - {action: update-profile, profile: {ticked: true}, merge: overwrite}
"""


def test_tidings_apply_saves_a_schedule_trigger(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "weekly.yaml"
    path.write_text(SCHEDULED)
    first = run_cli(settings, "apply", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["created automation weekly-digest"]
    assert run_cli(settings, "apply", str(path)).stdout.splitlines() == [
        "unchanged automation weekly-digest"
    ]
    assert [row[0] for row in rows(runtime)] == ["0 9 * * MON Europe/Paris → list digest"]
    path.write_text(SCHEDULED.replace("0 9 * * MON", "0 9 * * MOON"))
    broken = run_cli(settings, "apply", str(path))
    assert broken.returncode != 0
    assert "weekly-digest: triggers[0].cron: " in broken.stderr
    assert '"0 9 * * MOON" is not a cron expression' in broken.stderr
    with runtime.database.read() as session:
        assert session.scalar(select(func.count()).select_from(AutomationSchedule)) == 1


def test_the_sweeper_fires_a_tick_missed_while_nothing_ran(runtime: Runtime, scope: Scope) -> None:
    """A consumer's start (`recover`) and each periodic sweep fire what is due now."""
    save(runtime, scope)
    missed = utcnow() - timedelta(days=7)
    with runtime.database.write() as (session, _):
        session.execute(update(AutomationSchedule).values(next_fire_at=missed))
    runtime.jobs.recover()
    (run,) = started(runtime)
    assert run.source == "schedule/0 9 * * MON"
    after = rows(runtime)[0][1]
    assert after > utcnow()
    runtime.jobs.sweep()
    assert len(started(runtime)) == 1
