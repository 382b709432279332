"""POST /send with a delivery window in `message.delay`: Courier's `until` opening hours, and
Tidings' `window`, each read in the recipient's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.app import create_app
from tidings.kit.time import parse_timestamp, utcnow
from tidings.kit.windows import next_opening, parse_opening_hours, zone_named
from tidings.runtime import Runtime


def _send(client: TestClient, key: str, to: Any, delay: dict[str, Any]) -> Any:
    return client.post(
        "/send",
        json={"message": {"to": to, "content": {"title": "t", "body": "b"}, "delay": delay}},
        headers=bearer(key),
    )


def _send_at(client: TestClient, key: str, message_id: str) -> tuple[str, datetime | None]:
    message = client.get(f"/messages/{message_id}", headers=bearer(key)).json()
    return message["status"], parse_timestamp(message["send_at"]) if message["send_at"] else None


def test_delay_until_opening_hours_waits_for_each_recipients_opening(
    runtime: Runtime, keys: Keys
) -> None:
    # Open one hour a day, starting two hours from now on New York's wall clock: closed now
    # for a recipient there, whatever the time the test runs at.
    new_york, paris = zone_named("America/New_York"), zone_named("Europe/Paris")
    assert new_york is not None
    assert paris is not None
    start = (utcnow() + timedelta(hours=2)).astimezone(new_york)
    hours = f"{start:%H}:00-{start + timedelta(hours=1):%H}:00"
    window = parse_opening_hours(hours)
    with TestClient(create_app(runtime)) as client:  # no consumer: nothing is sent meanwhile
        stored = client.put(
            "/profiles/ny",
            json={"profile": {"email": "ny@example.org", "timezone": "America/New_York"}},
            headers=bearer(keys.test),
        )
        assert stored.status_code == 200, stored.text
        before = utcnow()
        # The stored profile's zone, and a zone given in `to` (Courier's zoneinfo).
        ny = _send(client, keys.test, {"user_id": "ny"}, {"until": hours})
        to_paris = {"email": "p@example.org", "zoneinfo": "Europe/Paris"}
        in_paris = _send(client, keys.test, to_paris, {"until": hours})
        assert (ny.status_code, in_paris.status_code) == (202, 202), ny.text + in_paris.text
        ny_status, ny_at = _send_at(client, keys.test, ny.json()["requestId"])
        _, paris_at = _send_at(client, keys.test, in_paris.json()["requestId"])
    assert ny_status == "DELAYED"
    assert ny_at is not None
    assert paris_at is not None
    assert ny_at.astimezone(new_york).hour == start.hour
    assert ny_at.astimezone(new_york).minute == 0
    assert abs(ny_at - next_opening(before, window, new_york)) < timedelta(seconds=1)
    assert abs(paris_at - next_opening(before, window, paris)) < timedelta(minutes=1)


def test_invalid_delay_windows_name_their_field(runtime: Runtime, keys: Keys) -> None:
    to = {"email": "a@example.org"}
    with TestClient(create_app(runtime)) as client:
        cases = [
            ({"until": "Mo-Fr 9-17"}, "message.delay.until"),
            ({"until": "Mo-Fr 09:00-17:00", "timezone": "Mars/Base"}, "message.delay.timezone"),
            (
                {"window": {"hours": {"start": "09:00", "end": "25:00"}}},
                "message.delay.window.hours.end",
            ),
            ({"window": {"days": ["mon"]}, "until": "Mo 09:00-10:00"}, "message.delay.window"),
        ]
        for delay, field in cases:
            response = _send(client, keys.test, to, delay)
            assert response.status_code == 400, (delay, response.text)
            body = response.json()
            code = "invalid_time" if field.endswith("until") else "invalid_window"
            assert (body["code"], body["field"]) == (code, field)
            assert body["message"].startswith(f"{field}: ")


def test_delay_window_in_a_fixed_zone_after_a_duration(runtime: Runtime, keys: Keys) -> None:
    with TestClient(create_app(runtime)) as client:
        before = utcnow()
        response = _send(
            client,
            keys.test,
            {"email": "a@example.org", "timezone": "Europe/Paris"},
            {"duration": 60_000, "window": {"days": ["sun"], "timezone": "Asia/Tokyo"}},
        )
        assert response.status_code == 202, response.text
        status, send_at = _send_at(client, keys.test, response.json()["requestId"])
    tokyo = zone_named("Asia/Tokyo")
    assert send_at is not None
    assert tokyo is not None
    local = send_at.astimezone(tokyo)
    assert local.weekday() == 6  # a Sunday in Tokyo, whatever the recipient's zone
    assert send_at >= before + timedelta(minutes=1) - timedelta(seconds=1)
    assert status == "DELAYED"
    assert send_at.tzinfo is not None
    assert send_at.astimezone(UTC) <= before + timedelta(days=8)
