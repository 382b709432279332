"""Replays as stored jobs: refused requests, cancel and delete, the cap per environment,
recovery from a lost process, the time limit, and the child process's limits."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.automation.test_runs import put, segment, setup_email
from tests.conftest import Keys, bearer, wait_for
from tests.payloads import identify, track
from tests.smtp_sink import SmtpSink
from tidings.errors import Conflict
from tidings.kit.outbound import OutboundGuard
from tidings.kit.time import isoformat, utcnow
from tidings.models import AutomationReplay, Event, EventStatus, ReplayStatus
from tidings.replay import service
from tidings.replay_run import runner
from tidings.runtime import Runtime
from tidings.workspace.service import Scope

AUTOMATION = {
    "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
    "steps": [{"action": "send", "template": "shipped"}],
}


def _window(**extra: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "from": isoformat(now - timedelta(hours=1)),
        "to": isoformat(now + timedelta(hours=1)),
        **extra,
    }


def _setup(client: TestClient, keys: Keys, smtp_sink: SmtpSink) -> None:
    setup_email(client, keys.test, smtp_sink)
    put(client, keys.test, "/automations/order-shipped", AUTOMATION)
    segment(client, keys.test, identify(messageId="i1", userId="u1", traits={"email": "a@x.org"}))
    segment(
        client,
        keys.test,
        track(messageId="m1", userId="u1", event="Order Shipped", properties={"order_id": 1}),
    )
    wait_for(lambda: len(smtp_sink.messages) == 1 or None, what="the live email")


def _scope(runtime: Runtime) -> Scope:
    from tidings.automation.apply import environment_scope

    with runtime.database.read() as session:
        return environment_scope(session, "test")


def _start(runtime: Runtime, scope: Scope) -> AutomationReplay:
    """A replay stored without a job: nobody runs it until the test does."""
    now = utcnow()
    request = service.ReplayRequest(
        "order-shipped", now - timedelta(hours=1), now + timedelta(hours=1)
    )
    with runtime.database.write() as (session, _):
        replay = service.start(session, None, scope, request, OutboundGuard.from_setting(""))
        session.expunge(replay)
        return replay


def _status(runtime: Runtime, replay_pk: int) -> AutomationReplay:
    with runtime.database.read() as session:
        replay = service.by_pk(session, replay_pk)
        session.expunge(replay)
        return replay


def test_bad_requests_name_the_field(client: TestClient, keys: Keys, smtp_sink: SmtpSink) -> None:
    _setup(client, keys, smtp_sink)
    cases = [
        (
            {"definition": {**AUTOMATION, "steps": [{"action": "send", "template": "nope"}]}},
            400,
            "definition.steps[0].template",
        ),
        ({"to": isoformat(utcnow() - timedelta(hours=2))}, 400, "to"),
        ({"limit": 100_001}, 400, "limit"),
    ]
    for body, status, field in cases:
        answer = client.post(
            "/automations/order-shipped/replay", json=_window(**body), headers=bearer(keys.test)
        )
        assert answer.status_code == status, answer.text
        error = answer.json()
        assert field in str(error), error
    missing = client.post("/automations/nope/replay", json=_window(), headers=bearer(keys.test))
    assert missing.status_code == 404
    unknown = client.get(
        "/automations/order-shipped/replays/rpl_0000000000000000", headers=bearer(keys.test)
    )
    assert unknown.status_code == 404
    assert "replay_not_found" in unknown.text


def test_cancel_a_queued_replay_and_delete_a_finished_one(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    scope = _scope(runtime)
    queued = _start(runtime, scope)
    path = f"/automations/order-shipped/replays/{queued.replay_id}"
    assert client.delete(path, headers=bearer(keys.test)).status_code == 204
    assert client.get(path, headers=bearer(keys.test)).json()["status"] == "canceled"
    # A canceled replay is not run.
    assert runner.run(runtime.database, queued.id, timeout=60) is None

    done = _start(runtime, scope)
    assert runner.run(runtime.database, done.id, timeout=600) == ReplayStatus.DONE
    path = f"/automations/order-shipped/replays/{done.replay_id}"
    events = client.get(f"{path}/events", headers=bearer(keys.test)).json()["results"]
    assert [(event["event"], event["change"]) for event in events] == [
        ("i1", "none"),
        ("m1", "same"),
    ]
    assert client.delete(path, headers=bearer(keys.test)).status_code == 204
    assert client.get(path, headers=bearer(keys.test)).status_code == 404
    listed = client.get("/automations/order-shipped/replays", headers=bearer(keys.test)).json()
    assert [replay["replay_id"] for replay in listed["results"]] == [queued.replay_id]


def test_an_environment_runs_at_most_three_replays_at_once(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    scope = _scope(runtime)
    for _ in range(service.MAX_UNFINISHED):
        _start(runtime, scope)
    with pytest.raises(Conflict) as refused:
        _start(runtime, scope)
    assert "Wait for one to finish, or cancel one" in refused.value.message


def test_a_replay_left_by_a_dead_process_is_taken_up_again_then_given_up(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    replay = _start(runtime, _scope(runtime))
    expired = utcnow() - timedelta(seconds=1)

    def left_running(attempts: int) -> None:
        with runtime.database.write() as (session, _):
            session.execute(
                update(AutomationReplay)
                .where(AutomationReplay.id == replay.id)
                .values(status=ReplayStatus.RUNNING, lease_until=expired, attempts=attempts)
            )

    # Its process stored the events' results, then died before it finished.
    assert runner.run(runtime.database, replay.id, timeout=600) == ReplayStatus.DONE
    left_running(1)
    assert service.keep(runtime.database) == 1
    # It is claimed again and runs to the end, its results stored afresh.
    assert runner.run(runtime.database, replay.id, timeout=600) == ReplayStatus.DONE
    assert _status(runtime, replay.id).attempts == 2
    events = client.get(
        f"/automations/order-shipped/replays/{replay.replay_id}/events", headers=bearer(keys.test)
    ).json()["results"]
    assert [event["event"] for event in events] == ["i1", "m1"]

    left_running(service.MAX_ATTEMPTS)
    assert service.keep(runtime.database) == 0
    failed = _status(runtime, replay.id)
    assert failed.status == ReplayStatus.FAILED
    assert failed.error == service.STOPPED_ERROR


def test_a_replay_past_its_time_limit_fails_saying_so(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    replay = _start(runtime, _scope(runtime))
    assert runner.run(runtime.database, replay.id, timeout=0.0) == ReplayStatus.FAILED
    error = _status(runtime, replay.id).error or ""
    assert "TIDINGS_REPLAY_TIMEOUT_SECONDS" in error


def _limits(pid: int) -> tuple[str, int] | None:
    """The child's address-space limit line and nice value, once it has set them (it caps
    its address space before it lowers its priority)."""
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
        nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (FileNotFoundError, ProcessLookupError):
        return None
    line = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    return (line, nice) if nice == 19 else None


def _child(runtime: Runtime) -> tuple[AutomationReplay, int]:
    """A replay, and the process id of the child the worker started for it."""
    replay = _start(runtime, _scope(runtime))
    assert runtime.jobs.replays.start(replay.id)
    pid = runtime.jobs.replays.pid(replay.id)
    assert pid is not None
    return replay, pid


def test_a_replay_process_is_niced_and_capped_and_a_killed_one_fails_its_replay(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    processes = runtime.jobs.replays
    replay, pid = _child(runtime)
    line, _ = wait_for(lambda: _limits(pid), what="the child's limits")
    cap = str(runtime.settings.replay_memory_mb * 1024 * 1024)
    assert line.split()[3:5] == [cap, cap]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(
        lambda: (found := _status(runtime, replay.id)).status == ReplayStatus.FAILED and found,
        what="the replay failed",
    )
    assert "killed" in (failed.error or "")

    # A free process takes the next one, and carries it out.
    second = _start(runtime, _scope(runtime))
    assert processes.start(second.id)
    done = wait_for(
        lambda: (found := _status(runtime, second.id)).status == ReplayStatus.DONE and found,
        what="the replay done",
        timeout=120,
    )
    assert done.result is not None
    assert done.result["counts"]["unchanged"] == 1


def test_a_replay_that_found_no_free_process_starts_once_one_ends(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One process a worker: a replay started while another runs stays queued, and takes
    the process as soon as the other's ends, without waiting for a sweep."""
    _setup(client, keys, smtp_sink)
    # Out of the sweep's reach: only the end of the first process can queue the second.
    monkeypatch.setattr(service, "QUEUED_WAIT_SECONDS", 24 * 3600.0)
    processes = runtime.jobs.replays
    first, pid = _child(runtime)
    os.kill(pid, signal.SIGSTOP)  # it holds the one process until the test lets it go
    try:
        second = _start(runtime, _scope(runtime))
        assert not processes.start(second.id)
        assert _status(runtime, second.id).status == ReplayStatus.QUEUED
    finally:
        os.kill(pid, signal.SIGCONT)
    for replay in (first, second):
        done = wait_for(
            lambda r=replay: (
                (found := _status(runtime, r.id)).status == ReplayStatus.DONE and found
            ),
            what=f"replay {replay.id} done",
            timeout=120,
        )
        assert done.result is not None


def test_closing_the_runtime_stops_the_replay_processes(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    processes = runtime.jobs.replays
    replay, pid = _child(runtime)
    processes.close()
    assert processes.running() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # A closed worker starts no more.
    assert not processes.start(replay.id)


def test_finished_replays_are_deleted_after_a_week(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _setup(client, keys, smtp_sink)
    scope = _scope(runtime)
    old, unfinished, recent = (_start(runtime, scope) for _ in range(3))
    for replay in (old, recent):
        assert runner.run(runtime.database, replay.id, timeout=600) == ReplayStatus.DONE
    week_ago = utcnow() - service.KEEP - timedelta(minutes=1)
    with runtime.database.write() as (session, _):
        session.execute(
            update(AutomationReplay)
            .where(AutomationReplay.id.in_([old.id, unfinished.id]))
            .values(created_at=week_ago)
        )
    assert service.expire(runtime.database, utcnow()) == 1
    listed = client.get("/automations/order-shipped/replays", headers=bearer(keys.test)).json()
    assert {replay["replay_id"] for replay in listed["results"]} == {
        unfinished.replay_id,
        recent.replay_id,
    }
    gone = client.get(
        f"/automations/order-shipped/replays/{old.replay_id}/events", headers=bearer(keys.test)
    )
    assert gone.status_code == 404


def test_a_replay_gives_way_while_live_events_wait(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    runtime: Runtime,
) -> None:
    _setup(client, keys, smtp_sink)

    def live_event_waiting(waiting: bool) -> None:
        status = EventStatus.RECEIVED if waiting else EventStatus.PROCESSED
        with runtime.database.write() as (session, _):
            session.execute(
                update(Event)
                .where(Event.message_id == "m1")
                .values(status=status, received_at=utcnow() - timedelta(seconds=1))
            )

    # An event received a second ago still waits; it is processed after three pauses.
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            live_event_waiting(False)

    live_event_waiting(True)
    replay = _start(runtime, _scope(runtime))
    assert runner.run(runtime.database, replay.id, timeout=600, pause=pause) == ReplayStatus.DONE
    assert pauses == [runner.LIVE_PAUSE_SECONDS] * 3
