"""Send windows on send and delay steps: validation paths, and the engine with a set clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.automation.test_runs import put, runs_of, segment, setup_email
from tests.automation.test_steps import validate
from tests.conftest import Keys, bearer, run_cli, wait_for
from tests.outbox import recording
from tests.payloads import identify, track
from tests.smtp_sink import SmtpSink
from tidings.automation import runs
from tidings.automation.service import DefinitionError
from tidings.config import Settings
from tidings.kit.time import parse_timestamp, utcnow
from tidings.kit.windows import zone_named
from tidings.models import AutomationRun, AutomationRunStep, Message
from tidings.runtime import Runtime
from tidings.workspace.service import resolve_keys

SEND = {"action": "send", "content": {"title": "t", "body": "b"}}
OFFICE = {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": {"start": "09:00", "end": "18:00"}}


class Killed(BaseException):
    pass


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (
            {**SEND, "window": {"hours": {"start": "9", "end": "18:00"}}},
            "window.hours.start",
            "HH:MM",
        ),
        ({**SEND, "window": {"days": ["mon", "someday"]}}, "window.days[1]", "not a day"),
        ({**SEND, "window": {"timezone": "Europe/Pariss"}}, "window.timezone", "IANA"),
        ({**SEND, "window": {"day": ["mon"]}}, "window.day", "not a window field"),
        ({**SEND, "window": "Mo-Fr nine to five"}, "window", "not opening hours"),
        (
            {"action": "delay", "duration": "1 hour", "window": {"hours": {"start": "22:00"}}},
            "window.hours.end",
            "needed",
        ),
    ],
)
def test_a_windows_errors_name_the_exact_field_path(
    step: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "delay", "duration": "1 minute"}, step)
    assert caught.value.field == f"steps[1].{field}"
    assert caught.value.message.startswith(f"steps[1].{field}: ")
    assert message in caught.value.message


def test_a_window_is_stored_as_given() -> None:
    stored = validate(
        {**SEND, "window": "Mo-Fr 09:00-18:00"},
        {"action": "delay", "duration": "1 day", "window": OFFICE},
    )
    assert stored["steps"][0]["window"] == "Mo-Fr 09:00-18:00"
    assert stored["steps"][1]["window"] == OFFICE


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _start(
    runtime: Runtime, keys: Keys, steps: list[dict[str, Any]], profile: dict[str, Any]
) -> int:
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
    with runtime.database.write() as (session, _):
        return runs.invoke_ad_hoc(
            session,
            scope,
            {"automation": {"steps": steps}, "recipient": "u1", "profile": profile},
            outbound=runtime.outbound,
        ).id


def _run(runtime: Runtime, run_pk: int) -> tuple[AutomationRun, list[AutomationRunStep], int]:
    with runtime.database.read() as session:
        run = session.get(AutomationRun, run_pk)
        assert run is not None
        rows = list(
            session.scalars(select(AutomationRunStep).where(AutomationRunStep.run_pk == run_pk))
        )
        messages = len(session.scalars(select(Message)).all())
        session.expunge_all()
    return run, rows, messages


def test_a_send_outside_its_window_waits_and_sends_at_the_opening(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saturday 2026-12-12 at 12:00 UTC; the recipient is in New York, where the window opens
    # on Monday at 09:00 EST (14:00 UTC).
    clock = Clock(datetime(2026, 12, 12, 12, tzinfo=UTC))
    monkeypatch.setattr(runs, "utcnow", clock)
    run_pk = _start(
        runtime,
        keys,
        [{**SEND, "ref": "sent", "window": OFFICE}, {"action": "delay", "duration": "1 minute"}],
        {"email": "u1@example.org", "timezone": "America/New_York"},
    )
    opening = datetime(2026, 12, 14, 14, tzinfo=UTC)
    context = runtime.jobs.context
    with recording(runtime.database) as dispatched:
        assert runs.advance_run(context, run_pk) == "WAITING"
        run, rows, messages = _run(runtime, run_pk)
        assert (run.step_index, messages) == (0, 0)
        assert run.wake_at is not None
        assert run.wake_at.replace(tzinfo=UTC) == opening
        assert [(row.status, row.output) for row in rows] == [
            ("WAITING", {"until": "2026-12-14T14:00:00Z"})
        ]
        # The wake-up is scheduled for the opening.
        scheduled = [at for outbox in dispatched.outboxes for pk, at in outbox.runs if pk == run_pk]
        assert [at.replace(tzinfo=UTC) if at else None for at in scheduled] == [opening]

        # Woken early (by a sweep): still waiting, nothing sent.
        clock.now = datetime(2026, 12, 14, 13, 59, tzinfo=UTC)
        assert runs.advance_run(context, run_pk) == "WAITING"
        assert _run(runtime, run_pk)[2] == 0

        # At the opening, the step sends, once, and the run goes on.
        clock.now = opening
        assert runs.advance_run(context, run_pk) == "WAITING"  # now on the delay
        run, rows, messages = _run(runtime, run_pk)
        assert (run.step_index, messages) == (1, 1)
        assert rows[0].status == "PROCESSED"
        assert set(rows[0].output or {}) == {"requestId", "messageId"}
        assert run.context["refs"]["sent"] == rows[0].output
        assert len(dispatched.message_ids) == 1


def test_a_crash_at_the_opening_leaves_nothing_and_the_redrive_sends_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(datetime(2026, 12, 12, 12, tzinfo=UTC))
    monkeypatch.setattr(runs, "utcnow", clock)
    run_pk = _start(runtime, keys, [{**SEND, "window": OFFICE}], {"email": "u1@example.org"})
    context = runtime.jobs.context
    with recording(runtime.database):
        assert runs.advance_run(context, run_pk) == "WAITING"
        clock.now = datetime(2026, 12, 14, 9, 30, tzinfo=UTC)  # no profile zone: UTC

        def crash(*args: Any, **kwargs: Any) -> None:
            raise Killed

        with monkeypatch.context() as patch:
            patch.setattr(runs, "_finish_step", crash)
            with pytest.raises(Killed):
                runs.advance_run(context, run_pk)
        run, rows, messages = _run(runtime, run_pk)
        assert (run.status, messages, rows[0].status) == ("WAITING", 0, "WAITING")
        assert runs.advance_run(context, run_pk) == "PROCESSED"
        assert runs.advance_run(context, run_pk) == "PROCESSED"
    assert _run(runtime, run_pk)[2] == 1


def test_a_send_woken_after_its_window_closed_waits_for_the_next_opening(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(datetime(2026, 12, 12, 12, tzinfo=UTC))
    monkeypatch.setattr(runs, "utcnow", clock)
    run_pk = _start(runtime, keys, [{**SEND, "window": OFFICE}], {"email": "u1@example.org"})
    context = runtime.jobs.context
    with recording(runtime.database):
        assert runs.advance_run(context, run_pk) == "WAITING"
        clock.now = datetime(2026, 12, 14, 19, tzinfo=UTC)  # the worker was down all Monday
        assert runs.advance_run(context, run_pk) == "WAITING"
        run, _, messages = _run(runtime, run_pk)
        assert messages == 0
        assert run.wake_at is not None
        assert run.wake_at.replace(tzinfo=UTC) == datetime(2026, 12, 15, 9, tzinfo=UTC)


def test_a_send_inside_its_window_sends_at_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "utcnow", Clock(datetime(2026, 12, 14, 8, 30, tzinfo=UTC)))
    # 08:30 UTC is 09:30 in Paris: open.
    run_pk = _start(
        runtime,
        keys,
        [{**SEND, "window": OFFICE}],
        {"email": "u1@example.org", "timezone": "Europe/Paris"},
    )
    with recording(runtime.database):
        assert runs.advance_run(runtime.jobs.context, run_pk) == "PROCESSED"
    assert _run(runtime, run_pk)[2] == 1


def test_a_delay_with_a_window_waits_past_its_duration_until_the_opening(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Friday 17:30 in Paris (16:30 UTC); one hour later the window is closed until Monday.
    clock = Clock(datetime(2026, 12, 11, 16, 30, tzinfo=UTC))
    monkeypatch.setattr(runs, "utcnow", clock)
    delay = {"action": "delay", "duration": "1 hour", "window": OFFICE}
    run_pk = _start(runtime, keys, [delay], {"timezone": "Europe/Paris"})
    with recording(runtime.database):
        assert runs.advance_run(runtime.jobs.context, run_pk) == "WAITING"
        _, rows, _ = _run(runtime, run_pk)
        assert rows[0].output == {"until": "2026-12-14T08:00:00Z"}
        clock.now = datetime(2026, 12, 14, 8, tzinfo=UTC)
        assert runs.advance_run(runtime.jobs.context, run_pk) == "PROCESSED"


WINDOWED = """\
kind: automation
id: office-hours
triggers:
  - source: segment
    event: track/Cart Abandoned
steps:
  - action: delay
    duration: 1 hour
    window: Mo-Fr 09:00-18:00
  - action: send
    content: {title: Your cart, body: Still there}
    window:
      days: [mon, tue, wed, thu, fri]
      hours: {start: "09:00", end: "18:00"}
      fallback_timezone: Europe/Paris
"""


def test_apply_files_carry_windows_and_refuse_bad_ones_at_their_path(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "office.yaml"
    file.write_text(WINDOWED)
    result = run_cli(settings, "apply", str(file))
    assert result.returncode == 0, result.stderr
    steps = client.get("/automations/office-hours", headers=bearer(keys.test)).json()["steps"]
    assert steps[0]["window"] == "Mo-Fr 09:00-18:00"
    assert steps[1]["window"]["hours"] == {"start": "09:00", "end": "18:00"}
    assert steps[1]["window"]["fallback_timezone"] == "Europe/Paris"

    file.write_text(WINDOWED.replace('end: "18:00"', 'end: "6pm"'))
    result = run_cli(settings, "apply", str(file))
    assert result.returncode != 0
    assert "automation office-hours: steps[1].window.hours.end: '6pm' is not a time" in (
        result.stderr
    )


def test_segment_events_send_inside_the_window_and_wait_outside_it(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    """Through Segment: the identify's `timezone` trait decides; the window is set around the
    real time (opening an hour ago, or in two hours, on the recipient's wall clock)."""
    setup_email(client, keys.test, smtp_sink)
    tokyo = zone_named("Asia/Tokyo")
    assert tokyo is not None
    local = utcnow().astimezone(tokyo)
    open_now = f"{local - timedelta(hours=1):%H}:00-{local + timedelta(hours=2):%H}:00"
    later = local + timedelta(hours=2)
    closed_now = f"{later:%H}:00-{later + timedelta(hours=1):%H}:00"
    for name, hours in (("open", open_now), ("closed", closed_now)):
        put(
            client,
            keys.test,
            f"/automations/{name}",
            {
                "triggers": [{"source": "segment", "event": f"track/Ping {name}"}],
                "steps": [
                    {
                        "action": "send",
                        "content": {"title": f"Window {name}", "body": "b"},
                        "window": hours,
                    }
                ],
            },
        )
    traits = {"email": "tk@example.org", "timezone": "Asia/Tokyo"}
    segment(client, keys.test, identify(userId="tk", traits=traits))
    segment(client, keys.test, track(userId="tk", event="Ping closed", messageId="p1"))
    segment(client, keys.test, track(userId="tk", event="Ping open", messageId="p2"))
    wait_for(lambda: smtp_sink.messages, what="the email of the open window")
    (waiting,) = wait_for(
        lambda: runs_of(client, keys.test, template_id="closed", status="WAITING"),
        what="the closed window's run waiting",
    )
    wake_at = parse_timestamp(waiting["wake_at"])
    assert wake_at is not None
    assert wake_at.astimezone(tokyo).hour == later.hour
    assert wake_at.astimezone(tokyo).minute == 0
    assert [message["Subject"] for message in smtp_sink.messages] == ["Window open"]
