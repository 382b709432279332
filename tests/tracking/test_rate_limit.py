"""Per-key rate limiting of the Tracking API (TIDINGS_TRACKING_RATE_LIMIT)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys
from tests.tracking.helpers import json_bytes, stored_events
from tidings.config import Settings
from tidings.ingest.tracking import RateLimiter, TooManyRequests
from tidings.runtime import Runtime


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tracking_rate_limit": 0.5, "tracking_rate_burst": 2})


def track(key: str, message_id: str) -> bytes:
    event = {"userId": "u", "event": "E", "messageId": message_id, "writeKey": key}
    return json_bytes(event)


def test_past_the_burst_a_key_gets_429_with_retry_after(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    for n in range(2):
        assert client.post("/v1/track", content=track(keys.test, f"ok-{n}")).status_code == 200
    limited = client.post("/v1/track", content=track(keys.test, "limited"))
    assert limited.status_code == 429, limited.text
    assert limited.headers["Retry-After"] == "2"
    assert limited.headers["X-RateLimit-Reset"] == "2"
    body = limited.json()
    assert body["code"] == "rate_limited"
    assert "TIDINGS_TRACKING_RATE_LIMIT" in body["message"]
    # Another key has its own bucket.
    assert client.post("/v1/track", content=track(keys.production, "other")).status_code == 200
    assert {row["message_id"] for row in stored_events(runtime)} == {"ok-0", "ok-1", "other"}


def test_the_bucket_refills_at_the_rate() -> None:
    limiter = RateLimiter(rate=10, burst=1)
    limiter.check("k", now=100.0)
    with pytest.raises(TooManyRequests) as raised:
        limiter.check("k", now=100.05)
    assert raised.value.headers == {"Retry-After": "1", "X-RateLimit-Reset": "1"}
    limiter.check("k", now=100.2)
    limiter.check("other", now=100.2)


def test_off_by_default() -> None:
    limiter = RateLimiter.from_settings(Settings())
    for _ in range(10_000):
        limiter.check("k", now=1.0)
    assert limiter.rate == 0


def test_made_up_keys_do_not_grow_it_without_bound() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=100)
    for n in range(1000):
        limiter.check(f"k{n}", now=1.0)
    assert len(limiter._buckets) == 100
