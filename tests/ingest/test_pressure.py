"""The in-process consumer gives way while ingest is saturated (tidings.ingest.pressure)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys
from tests.ingest.test_inbound_segment import post, processed
from tests.payloads import track
from tidings.app import create_app
from tidings.ingest.pressure import IngestPressure, no_pause
from tidings.runtime import Runtime


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pressure_on(clock: FakeClock) -> IngestPressure:
    return IngestPressure(window=0.5, busy_share=0.5, max_pause=1.0, clock=clock, sleep=clock.sleep)


def write(
    pressure: IngestPressure, clock: FakeClock, busy: float, idle: float = 0.0, requests: int = 4
) -> None:
    pressure.started(requests)
    clock.now += busy
    pressure.finished()
    clock.now += idle


def test_busy_share_counts_the_last_window_only() -> None:
    clock = FakeClock()
    pressure = pressure_on(clock)
    assert pressure.busy_share() == 0.0
    write(pressure, clock, busy=0.1, idle=0.1)
    write(pressure, clock, busy=0.1, idle=0.1)
    assert abs(pressure.busy_share() - 0.4) < 1e-9
    clock.now += 0.35  # the first batch has left the window, half of the second too
    assert abs(pressure.busy_share() - 0.1) < 1e-9
    clock.now += 1.0
    assert pressure.busy_share() == 0.0


def test_a_batch_being_written_counts_as_busy() -> None:
    clock = FakeClock()
    pressure = pressure_on(clock)
    pressure.started(3)
    clock.now += 0.3
    assert abs(pressure.busy_share() - 0.6) < 1e-9
    clock.now += 1.0
    assert pressure.busy_share() == 1.0
    assert pressure.requests_per_batch() == 3.0


def test_an_idle_or_lightly_loaded_writer_makes_nobody_wait() -> None:
    clock = FakeClock()
    pressure = pressure_on(clock)
    assert pressure.wait_for_turn() is False
    for _ in range(10):  # 10 % busy
        write(pressure, clock, busy=0.005, idle=0.045)
    assert pressure.wait_for_turn() is False
    assert clock.slept == []
    assert pressure.pauses == 0


def test_a_saturated_writer_makes_work_wait_until_it_calms_down() -> None:
    clock = FakeClock()
    pressure = pressure_on(clock)
    for _ in range(10):  # 90 % busy
        write(pressure, clock, busy=0.045, idle=0.005)
    # The writer stops: the share falls under half within about a quarter of a second.
    assert pressure.wait_for_turn() is False  # calm again: the work goes on at full size
    assert 0.2 <= sum(clock.slept) <= 0.3
    assert pressure.pauses == 1
    assert pressure.busy_share() <= 0.5


def test_a_busy_writer_with_nothing_queued_makes_nobody_wait() -> None:
    # One request per batch: each found the writer free, however long the writes took.
    clock = FakeClock()
    pressure = pressure_on(clock)
    for _ in range(10):
        write(pressure, clock, busy=0.045, idle=0.005, requests=1)
    assert pressure.busy_share() > 0.5
    assert pressure.requests_per_batch() == 1.0
    pressure.wait_for_turn()
    assert clock.slept == []
    assert pressure.pauses == 0


def test_work_waits_at_most_max_pause_however_busy_ingest_stays() -> None:
    clock = FakeClock()
    pressure = pressure_on(clock)
    pressure.started(16)  # one endless batch: saturated throughout
    clock.now += 1.0
    assert pressure.wait_for_turn() is True  # still saturated: do one thing, then look again
    assert abs(sum(clock.slept) - 1.0) < 0.03
    assert abs(pressure.paused_seconds - 1.0) < 0.03


def test_serve_paces_its_consumer_by_the_writer(runtime: Runtime, keys: Keys) -> None:
    assert runtime.jobs.pace is no_pause
    with TestClient(create_app(runtime, consumer_workers=2)) as client:
        pressure = client.app.state.ingest_pressure  # type: ignore[attr-defined]
        assert isinstance(pressure, IngestPressure)
        assert runtime.jobs.pace == pressure.wait_for_turn
        assert client.app.state.ingest_writer.pressure is pressure  # type: ignore[attr-defined]
        post(client, keys.test, track(messageId="paced"))
        processed(client, keys.test, "paced")
    # The writer has stopped: nothing is saturated, and the pace no longer waits.
    assert runtime.jobs.pace() is False


def test_ingest_priority_can_be_turned_off(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"ingest_priority": False})
    object.__setattr__(runtime, "settings", settings)
    with TestClient(create_app(runtime, consumer_workers=2)) as client:
        # The writer still measures itself (its enqueuer paces by it); nobody waits for it.
        writer = client.app.state.ingest_writer  # type: ignore[attr-defined]
        assert isinstance(writer.pressure, IngestPressure)
        assert runtime.jobs.pace is no_pause


def test_an_api_only_replica_paces_nothing_but_its_enqueuer(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        writer = client.app.state.ingest_writer  # type: ignore[attr-defined]
        assert isinstance(writer.pressure, IngestPressure)
        assert runtime.jobs.pace is no_pause
