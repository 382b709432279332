"""SIGKILL right after a 202: the acknowledged event is processed after restart."""

from __future__ import annotations

import json

import httpx

from tests.conftest import Serve, cli_keys, wait_for
from tests.payloads import SEGMENT_HEADERS, identify
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings
from tidings.jobs.engine import build_huey


def _key(settings: Settings) -> str:
    key: str = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    return key


def _kill_after_202(serve: Serve, settings: Settings) -> str:
    # No consumer: the event is acknowledged and cannot have been processed before the kill.
    server = serve("first.log", TIDINGS_CONSUMER_WORKERS="0")
    key = _key(settings)
    response = httpx.post(
        f"{server.url}/inbound/segment",
        content=json.dumps(identify()),
        headers={**SEGMENT_HEADERS, "Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 202
    server.kill()
    return key


def _restart_and_wait(serve: Serve, key: str) -> None:
    server = serve("second.log")

    def profile() -> dict[str, object] | None:
        response = httpx.get(
            f"{server.url}/profiles/rod-test",
            headers={"Authorization": f"Bearer {key}"},
            timeout=HTTP_TIMEOUT,
        )
        return response.json()["profile"] if response.status_code == 200 else None

    assert wait_for(profile, what="profile after restart", details=server.log) == {
        "trait1": 2,
        "email": "test@example.org",
    }
    record = httpx.get(
        f"{server.url}/integrations/segment/events/segment-test-message-iskh4123",
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    ).json()
    assert record["status"] == "processed"
    assert record["attempts"] == 1


def test_sigkill_after_202_then_restart_processes_the_event(
    serve: Serve, settings: Settings
) -> None:
    key = _kill_after_202(serve, settings)
    _restart_and_wait(serve, key)


def test_event_whose_job_was_lost_is_recovered_by_the_sweeper(
    serve: Serve, settings: Settings
) -> None:
    key = _kill_after_202(serve, settings)
    # Lose every queued job, as a crash inside Huey's dequeue would.
    huey = build_huey(settings)
    huey.flush()
    assert huey.pending_count() == 0
    _restart_and_wait(serve, key)
