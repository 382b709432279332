"""The throttle step: validation with exact field paths, the count per recipient, per
environment and per throttle_key, its window on a controllable clock, and a crash inside the
step that leaves neither the count nor the outcome."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.automation.test_runs import Killed, invoke, put, run_in, runs_of
from tests.automation.test_steps import validate
from tests.conftest import Keys, bearer, run_cli
from tidings.automation import runs
from tidings.automation.service import DefinitionError
from tidings.automation.steps.throttle import count_run
from tidings.config import Settings
from tidings.models import AutomationRun, ThrottleWindow
from tidings.runtime import Runtime
from tidings.workspace.service import resolve_keys

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
FINAL = ("PROCESSED", "THROTTLED", "ERROR")


class Clock:
    """The engine's clock (`runs.utcnow`), moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(runs, "utcnow", clock)
    return clock


FIELD_PATHS = [
    ({"period": "1 day"}, "steps[0].max_allowed", "a throttle step needs max_allowed"),
    ({"max_allowed": 0, "period": "1 day"}, "steps[0].max_allowed", "from 1 to"),
    ({"max_allowed": "2", "period": "1 day"}, "steps[0].max_allowed", 'not "2"'),
    ({"max_allowed": 1}, "steps[0].period", "a throttle step needs a period"),
    ({"max_allowed": 1, "period": "1 dya"}, "steps[0].period", '"1 dya" is not a duration'),
    ({"max_allowed": 1, "period": "0 seconds"}, "steps[0].period", "longer than 0"),
    ({"max_allowed": 1, "period": "1 day", "scope": "team"}, "steps[0].scope", "user, global"),
    (
        {"max_allowed": 1, "period": "1 day", "scope": "dynamic"},
        "steps[0].throttle_key",
        'scope "dynamic" needs a throttle_key',
    ),
    (
        {"max_allowed": 1, "period": "1 day", "scope": "global", "throttle_key": "x"},
        "steps[0].throttle_key",
        'only used with scope "dynamic"',
    ),
    (
        {"max_allowed": 1, "period": "1 day", "throttle_key": "{{ data.id"},
        "steps[0].throttle_key",
        "the Liquid template does not parse",
    ),
    (
        {"max_allowed": 1, "period": "1 day", "window": "1 day"},
        "steps[0].window",
        "its fields are action, if, ref, max_allowed, period, scope, throttle_key",
    ),
]


@pytest.mark.parametrize(("fields", "field", "message"), FIELD_PATHS)
def test_a_throttle_steps_errors_name_the_exact_field_path(
    fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "throttle", **fields})
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert message in caught.value.message


def test_courier_shapes_are_accepted_and_stored_as_given() -> None:
    for step in (
        {"action": "throttle", "max_allowed": 1, "period": "PT24H", "scope": "user"},
        {"action": "throttle", "max_allowed": 5, "period": "1 hour", "scope": "global"},
        {
            "action": "throttle",
            "max_allowed": 2,
            "period": "P1D",
            "scope": "dynamic",
            "throttle_key": "refs.data.alert_id",
        },
        {"action": "throttle", "max_allowed": 1, "period": "1 day", "throttle_key": "{{ data.x }}"},
    ):
        assert validate(step)["steps"] == [step]


def test_the_count_opens_a_window_counts_in_it_and_starts_afresh_after_it(
    runtime: Runtime, keys: Keys
) -> None:
    with runtime.database.read() as session:
        environment = resolve_keys(session, runtime.cipher, [keys.test])[keys.test].environment_id
    hour = timedelta(hours=1)

    def count(key: str, at: datetime) -> tuple[int, datetime, datetime]:
        with runtime.database.write() as (session, _):
            window = count_run(session, environment, key, at, hour)
            return window.count, window.opened_at, window.ends_at

    assert count("a", START) == (1, START, START + hour)
    assert count("a", START + timedelta(minutes=59)) == (2, START, START + hour)
    assert count("b", START + timedelta(minutes=59))[0] == 1  # another key, its own window
    # The window is over: the next count opens a new one where it happens.
    later = START + hour
    assert count("a", later) == (1, later, later + hour)
    assert count("a", later + timedelta(seconds=1)) == (2, later, later + hour)


def test_concurrent_counts_of_one_key_never_read_the_same_value(
    runtime: Runtime, keys: Keys
) -> None:
    with runtime.database.read() as session:
        environment = resolve_keys(session, runtime.cipher, [keys.test])[keys.test].environment_id
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        try:
            barrier.wait()
            with runtime.database.write() as (session, _):
                counts.append(count_run(session, environment, "k", START, timedelta(days=1)).count)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(counts) == [1, 2, 3, 4, 5, 6]


def _automation(client: TestClient, key: str, name: str, **throttle: Any) -> None:
    put(
        client,
        key,
        f"/automations/{name}",
        {
            "steps": [
                {"action": "throttle", "ref": "gate", **throttle},
                {"action": "update-profile", "profile": {"passed": True}, "merge": "overwrite"},
            ]
        },
    )


def _final(client: TestClient, key: str, name: str, **body: Any) -> dict[str, Any]:
    run_id = invoke(client, key, f"/automations/{name}/invoke", body)
    return run_in(client, key, run_id, *FINAL)


def test_per_recipient_at_most_max_allowed_pass_in_the_period(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    _automation(client, keys.test, "reminder", max_allowed=2, period="1 day", scope="user")
    statuses = [_final(client, keys.test, "reminder", recipient="u1")["status"] for _ in range(3)]
    assert statuses == ["PROCESSED", "PROCESSED", "THROTTLED"]
    # Another recipient has a count of its own.
    assert _final(client, keys.test, "reminder", recipient="u2")["status"] == "PROCESSED"

    throttled = runs_of(client, keys.test, status="THROTTLED")
    assert len(throttled) == 1
    detail = run_in(client, keys.test, throttled[0]["run_id"], "THROTTLED")
    assert detail["recipient"] == "u1"
    assert detail["error"].startswith("throttled: 2 runs already passed this throttle for ")
    assert "(at most 2 per 1 day)" in detail["error"]
    # The run ended at the throttle: its step is THROTTLED, the update-profile never ran.
    (step,) = detail["steps"]
    assert step["status"] == "THROTTLED"
    assert step["output"]["count"] == 3
    assert step["output"]["throttled"] is True
    assert step["output"]["window_ends_at"] == "2030-01-08T09:00:00Z"
    assert detail["finished_at"] is not None

    # A day later the window is over: the next run passes, in a window of its own.
    clock.now = START + timedelta(days=1)
    passed = _final(client, keys.test, "reminder", recipient="u1")
    assert passed["status"] == "PROCESSED"
    assert passed["context"]["refs"]["gate"]["count"] == 1
    assert passed["context"]["refs"]["gate"]["window_opened_at"] == "2030-01-08T09:00:00Z"
    statuses = {run["status"] for run in runs_of(client, keys.test, status="THROTTLED,ERROR")}
    assert statuses == {"THROTTLED"}


def test_the_global_scope_counts_every_run_of_the_automation(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    _automation(client, keys.test, "digest", max_allowed=1, period="1 hour", scope="global")
    _automation(client, keys.test, "other", max_allowed=1, period="1 hour", scope="global")
    assert _final(client, keys.test, "digest", recipient="u1")["status"] == "PROCESSED"
    blocked = _final(client, keys.test, "digest", recipient="u2")
    assert blocked["status"] == "THROTTLED"
    assert "in this environment" in blocked["error"]
    # Another automation's global count is its own; so is the production environment's.
    assert _final(client, keys.test, "other", recipient="u1")["status"] == "PROCESSED"
    _automation(client, keys.production, "digest", max_allowed=1, period="1 hour", scope="global")
    assert _final(client, keys.production, "digest", recipient="u1")["status"] == "PROCESSED"


def test_a_throttle_key_is_counted_across_automations(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    hourly: dict[str, Any] = {"max_allowed": 1, "period": "1 hour"}
    _automation(client, keys.test, "alert-email", **hourly, throttle_key="{{ data.alert_id }}")
    _automation(
        client, keys.test, "alert-sms", **hourly, scope="dynamic", throttle_key="refs.data.alert_id"
    )
    first = _final(client, keys.test, "alert-email", recipient="u1", data={"alert_id": "a"})
    assert first["status"] == "PROCESSED"
    assert first["context"]["refs"]["gate"]["scope"] == "dynamic"
    # The same key from another automation and another recipient: the same count.
    second = _final(client, keys.test, "alert-sms", recipient="u2", data={"alert_id": "a"})
    assert second["status"] == "THROTTLED"
    assert "for throttle_key 'a'" in second["error"]
    other = _final(client, keys.test, "alert-sms", recipient="u2", data={"alert_id": "b"})
    assert other["status"] == "PROCESSED"
    # A key that comes out empty is an error of the run, not a shared count.
    missing = _final(client, keys.test, "alert-email", recipient="u1", data={})
    assert missing["status"] == "ERROR"
    assert "throttle_key" in missing["error"]


def test_a_user_throttle_without_a_recipient_ends_the_run_in_error(
    client: TestClient, keys: Keys, clock: Clock
) -> None:
    _automation(client, keys.test, "reminder", max_allowed=1, period="1 day")
    failed = _final(client, keys.test, "reminder")
    assert failed["status"] == "ERROR"
    assert 'scope "user" counts the runs of each recipient' in failed["error"]


def _ad_hoc_run(runtime: Runtime, keys: Keys) -> int:
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
    with runtime.database.write() as (session, _):
        return runs.invoke_ad_hoc(
            session,
            scope,
            {
                "automation": {
                    "steps": [{"action": "throttle", "max_allowed": 1, "period": "1 day"}]
                },
                "recipient": "u1",
            },
            outbound=runtime.outbound,
        ).id


def _windows(runtime: Runtime) -> list[tuple[str, int]]:
    with runtime.database.read() as session:
        return [(row.key, row.count) for row in session.scalars(select(ThrottleWindow))]


def test_a_crash_inside_the_step_undoes_the_count_and_the_redrive_counts_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _ad_hoc_run(runtime, keys), _ad_hoc_run(runtime, keys)
    context = runtime.jobs.context

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Killed

    # The process dies after the throttle counted the run, before the transaction commits.
    with monkeypatch.context() as patch:
        patch.setattr(runs, "_finish_step", crash)
        with pytest.raises(Killed):
            runs.advance_run(context, first)
    assert _windows(runtime) == []
    with runtime.database.read() as session:
        assert session.get(AutomationRun, first).status == "PROCESSING"  # type: ignore[union-attr]

    # Re-driven: counted once, and a second drive counts nothing more.
    assert runs.advance_run(context, first) == "PROCESSED"
    assert runs.advance_run(context, first) == "PROCESSED"
    assert _windows(runtime) == [("ad-hoc/user/u1", 1)]
    # The count held: the next run of the same recipient is throttled, once.
    assert runs.advance_run(context, second) == "THROTTLED"
    assert runs.advance_run(context, second) == "THROTTLED"
    assert _windows(runtime) == [("ad-hoc/user/u1", 2)]


APPLIED = """\
kind: automation
id: daily-reminder
triggers:
  - source: segment
    event: track/Reminder Due
steps:
  - action: throttle
    max_allowed: 1
    period: 1 day
    scope: user
  - action: send
    content: {title: Reminder, body: "."}
"""


def test_apply_files_hold_a_throttle_step(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "reminder.yaml"
    path.write_text(APPLIED)
    result = run_cli(settings, "apply", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["created automation daily-reminder"]
    stored = client.get("/automations/daily-reminder", headers=bearer(keys.test)).json()
    assert stored["steps"][0] == {
        "action": "throttle",
        "max_allowed": 1,
        "period": "1 day",
        "scope": "user",
    }
    path.write_text(APPLIED.replace("period: 1 day", "period: 1 dya"))
    result = run_cli(settings, "apply", str(path))
    assert result.returncode != 0
    assert 'automation daily-reminder: steps[0].period: "1 dya" is not a duration' in result.stderr
