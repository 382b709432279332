"""The product page, end to end: a live `tidings serve`, driven the way Segment drives it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer, cli_keys, run_cli, wait_for
from tests.payloads import SEGMENT_HEADERS, identify, track
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings


def _test_key(settings: Settings) -> str:
    keys = cli_keys(settings)
    assert {key["environment"] for key in keys} == {"test", "production"}
    for key in keys:
        assert {"id", "environment", "key"} <= set(key)
    key: str = next(key["key"] for key in keys if key["environment"] == "test")
    return key


def _send(server: LiveServer, key: str, event: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/inbound/segment",
        content=json.dumps(event),
        headers={**SEGMENT_HEADERS, "Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )


def _get(server: LiveServer, key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
    )


def _processed(server: LiveServer, key: str, message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = _get(
            server, key, f"/integrations/segment/events/{message_id}"
        ).json()
        return record if record.get("status") == "processed" else None

    return wait_for(check, what=f"{message_id} processed")


def test_product_page_walkthrough(live_server: LiveServer, settings: Settings) -> None:
    key = _test_key(settings)
    # Segment checks the key when it is saved.
    debug = httpx.post(
        f"{live_server.url}/debug", headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
    )
    assert debug.status_code == 200
    assert debug.json()["environment"] == "test"

    # Event Tester → "Send Event": the identify, then the track.
    identify_response = _send(live_server, key, identify())
    assert identify_response.status_code == 202
    assert identify_response.json() == {"messageId": "segment-test-message-iskh4123"}
    track_response = _send(live_server, key, track())
    assert track_response.status_code == 202

    identify_record = _processed(live_server, key, "segment-test-message-iskh4123")
    profile = _get(live_server, key, "/profiles/rod-test").json()["profile"]
    assert profile["trait1"] == 2
    assert profile["email"] == "test@example.org"
    assert [d["code"] for d in identify_record["diagnostics"]] == ["top_level_email"]

    _processed(live_server, key, "segment-test-message-a8rmf")
    listing = _get(live_server, key, "/integrations/segment/events").json()["results"]
    assert [row["name"] for row in listing] == ["track/Segment Test Event Name", "identify"]
    assert listing[0]["data"] == {"property1": 1, "property2": "test", "property3": True}
    names = _get(live_server, key, "/integrations/segment/event-names").json()["results"]
    assert {row["name"] for row in names} == {"track/Segment Test Event Name", "identify"}

    # Segment retries: the same messageId again is acknowledged and changes nothing.
    retry = _send(live_server, key, identify(traits={"trait1": 99}))
    assert retry.json() == {"messageId": "segment-test-message-iskh4123", "duplicate": True}
    assert _get(live_server, key, "/profiles/rod-test").json()["profile"]["trait1"] == 2


def test_openapi_and_docs_are_served(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json", timeout=HTTP_TIMEOUT).json()
    for path in (
        "/inbound/segment",
        "/inbound/courier",
        "/debug",
        "/profiles/{user_id}",
        "/tenants/{tenant_id}",
        "/integrations/segment/events",
    ):
        assert path in spec["paths"]
    assert httpx.get(f"{live_server.url}/docs", timeout=HTTP_TIMEOUT).status_code == 200


def test_cli_creates_and_revokes_keys(live_server: LiveServer, settings: Settings) -> None:
    created = run_cli(settings, "keys", "create", "--env", "production", "--json")
    assert created.returncode == 0, created.stderr
    new_key = json.loads(created.stdout)
    assert new_key["environment"] == "production"
    assert new_key["key"].startswith("tdg_live_")
    assert _send(live_server, new_key["key"], track()).status_code == 202
    assert new_key["id"] in {key["id"] for key in cli_keys(settings)}

    revoked = run_cli(settings, "keys", "revoke", new_key["id"])
    assert revoked.returncode == 0, revoked.stderr
    response = _send(live_server, new_key["key"], track(messageId="after-revoke"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    listed = {key["id"]: key for key in cli_keys(settings)}
    assert listed[new_key["id"]]["revoked"] is True

    unknown = run_cli(settings, "keys", "revoke", "key_nope")
    assert unknown.returncode != 0
    assert "No API key" in unknown.stderr


def test_keys_are_stored_encrypted_and_hashed(live_server: LiveServer, settings: Settings) -> None:
    key = _test_key(settings)
    if settings.database_url:
        return_value = None  # Postgres: the same code path; the SQLite check below reads bytes.
        assert return_value is None
        return
    database = Path(settings.data_dir) / "tidings.db"
    rows = sqlite3.connect(database).execute("SELECT key_hash, key_ciphertext FROM api_key")
    for key_hash, ciphertext in rows:
        assert key.encode() not in bytes(ciphertext)
        assert key not in key_hash
