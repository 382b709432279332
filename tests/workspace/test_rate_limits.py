"""Failed API key checks are limited per client address: 429 with Retry-After, on the
FastAPI routes and on the ingest fast path alike; successful ones are never counted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.payloads import track
from tests.tracking.helpers import stored_events
from tidings.config import Settings
from tidings.runtime import Runtime

LIMIT = 3
WINDOW = 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"auth_failure_limit": LIMIT, "auth_failure_window_seconds": WINDOW}
    )


@pytest.fixture
def clock(runtime: Runtime) -> list[float]:
    """The failure counter's clock, moved by the test instead of sleeping."""
    now = [1000.0]
    runtime.auth_limits.api_clients.clock = lambda: now[0]
    return now


REQUESTS = [
    ("POST", "/send", {"message": {"to": {"user_id": "u1"}, "template": "t"}}),
    ("GET", "/notifications", None),
    ("POST", "/debug", None),
    ("POST", "/inbound/segment", track()),  # the fast path
    ("POST", "/v1/track", {"userId": "u1", "event": "E", "messageId": "m"}),  # the fast path
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_after_the_limit_a_client_gets_429_until_the_window_passes(
    client: TestClient,
    keys: Keys,
    runtime: Runtime,
    clock: list[float],
    method: str,
    path: str,
    body: object,
) -> None:
    for _ in range(LIMIT):
        wrong = client.request(method, path, json=body, headers=bearer("tdg_test_guess"))
        assert wrong.status_code == 401, wrong.text
        assert wrong.json()["code"] == "invalid_api_key"

    for key in ("tdg_test_guess", keys.test):  # the right key too: a guess learns nothing
        limited = client.request(method, path, json=body, headers=bearer(key))
        assert limited.status_code == 429, limited.text
        assert limited.headers["Retry-After"] == str(WINDOW)
        assert limited.json() == {
            "code": "too_many_failed_authentications",
            "message": limited.json()["message"],
            "field": None,
        }
        assert "TIDINGS_AUTH_FAILURE_LIMIT" in limited.json()["message"]
        assert f"retry after {WINDOW} s" in limited.json()["message"]
    assert stored_events(runtime) == []

    clock[0] += WINDOW - 1
    assert client.request(method, path, json=body, headers=bearer(keys.test)).status_code == 429
    clock[0] += 1
    passed = client.request(method, path, json=body, headers=bearer(keys.test))
    assert passed.status_code not in (401, 403, 429), passed.text


def test_the_failures_of_one_path_count_on_every_path(
    client: TestClient, keys: Keys, clock: list[float]
) -> None:
    assert client.post("/inbound/segment", json=track(), headers=bearer("x")).status_code == 401
    assert client.post("/v1/t", json={"writeKey": "y", "userId": "u"}).status_code == 401
    assert client.get("/profiles/u1", headers=bearer("z")).status_code == 401
    assert client.get("/profiles/u1", headers=bearer(keys.test)).status_code == 429


def test_successful_authentications_are_not_counted(
    client: TestClient, keys: Keys, runtime: Runtime, clock: list[float]
) -> None:
    for n in range(20 * LIMIT):
        assert client.get("/notifications", headers=bearer(keys.test)).status_code == 200
        event = track(messageId=f"ok-{n}")
        assert (
            client.post("/inbound/segment", json=event, headers=bearer(keys.test)).status_code
            == 202
        )
    # Neither are missing keys: they guess nothing.
    for _ in range(20 * LIMIT):
        assert client.get("/notifications").status_code == 401
    for _ in range(LIMIT - 1):
        assert client.get("/notifications", headers=bearer("wrong")).status_code == 401
    assert client.get("/notifications", headers=bearer(keys.test)).status_code == 200
    assert len(stored_events(runtime)) == 20 * LIMIT


def test_the_limit_is_per_client_address(runtime: Runtime, keys: Keys, clock: list[float]) -> None:
    from tidings.app import create_app

    app = create_app(runtime)
    with (
        TestClient(app, client=("192.0.2.1", 5000)) as attacker,
        TestClient(app, client=("192.0.2.2", 5000)) as other,
    ):
        for _ in range(LIMIT):
            assert attacker.get("/notifications", headers=bearer("guess")).status_code == 401
        assert attacker.get("/notifications", headers=bearer(keys.test)).status_code == 429
        assert other.get("/notifications", headers=bearer(keys.test)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_a_key_accepted_before_the_lockout_still_passes_during_it(
    client: TestClient,
    keys: Keys,
    runtime: Runtime,
    clock: list[float],
    method: str,
    path: str,
    body: object,
) -> None:
    """Senders share addresses (Segment's servers send every workspace's events): one
    sender's wrong key must not stop another's good one. A key this process accepted lately
    passes a locked address; a guess cannot be one of those."""
    accepted = client.request(method, path, json=body, headers=bearer(keys.test))
    assert accepted.status_code not in (401, 403, 429), accepted.text
    for _ in range(LIMIT):
        assert client.request(method, path, json=body, headers=bearer("guess")).status_code == 401
    assert client.request(method, path, json=body, headers=bearer("guess")).status_code == 429
    # The production key was never accepted here: during the lockout it waits like a guess.
    assert (
        client.request(method, path, json=body, headers=bearer(keys.production)).status_code == 429
    )
    again = client.request(method, path, json=body, headers=bearer(keys.test))
    assert again.status_code == accepted.status_code, again.text
