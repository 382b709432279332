"""Segment's official libraries, pointed at a live `tidings serve` with `host`.

analytics-python (PyPI `segment-analytics-python`) and `@segment/analytics-node` (npm,
installed under tests/tracking/node by `make test`) each send identify, track, group, page,
screen and alias, then a flush of 500 events; every one lands exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client
from segment.analytics import request as segment_request

from tests import processes
from tests.conftest import Keys, LiveServer, Serve, bearer, wait_for
from tests.processes import HTTP_TIMEOUT
from tests.tracking.helpers import stored_events
from tidings.runtime import Runtime

NODE_DIR = Path(__file__).parent / "node"
BULK = 500
TYPES = {"identify", "track", "group", "page", "screen", "alias"}


@pytest.fixture
def server(runtime: Runtime, serve: Serve) -> LiveServer:
    """`tidings serve` on the test's database (already migrated, with its keys)."""
    return serve()


def assert_landed_once(runtime: Runtime, prefix: str, expected: set[str]) -> list[dict[str, Any]]:
    rows = [row for row in stored_events(runtime) if row["message_id"].startswith(prefix)]
    counts = Counter(row["message_id"] for row in rows)
    assert {message_id for message_id, n in counts.items() if n > 1} == set()
    assert set(counts) == expected
    return rows


def profile_of(server: LiveServer, key: str, user_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{server.url}/profiles/{user_id}", headers=bearer(key), timeout=HTTP_TIMEOUT
    )
    return response.json()["profile"] if response.status_code == 200 else None


def test_analytics_python_sends_every_type_and_a_500_event_flush(
    server: LiveServer, keys: Keys, runtime: Runtime
) -> None:
    errors: list[str] = []
    try:
        for gzip in (False, True):
            client = Client(
                keys.test,
                host=server.url,
                gzip=gzip,
                max_retries=2,
                on_error=lambda error, _batch: errors.append(repr(error)),
            )
            run = f"py{int(gzip)}"
            user = f"{run}-user"
            client.identify(user, {"email": "py@example.org"}, message_id=f"{run}-identify")
            client.track(user, "Order Shipped", {"order": 7}, message_id=f"{run}-track")
            client.group(user, f"{run}-team", {"name": "Team"}, message_id=f"{run}-group")
            client.page(user, "Docs", "Home", {"path": "/"}, message_id=f"{run}-page")
            client.screen(user, "App", "Settings", message_id=f"{run}-screen")
            client.alias(f"{run}-anon", user, message_id=f"{run}-alias")
            for n in range(BULK):
                client.track(f"{user}-{n % 10}", "Bulk", {"n": n}, message_id=f"{run}-bulk-{n}")
            client.flush()
            client.shutdown()
    finally:
        segment_request._session.close()
    assert errors == []
    for run in ("py0", "py1"):
        expected = {f"{run}-{t}" for t in TYPES} | {f"{run}-bulk-{n}" for n in range(BULK)}
        rows = assert_landed_once(runtime, run, expected)
        types = {row["message_id"]: row["type"] for row in rows}
        assert {types[f"{run}-{t}"] for t in TYPES} == TYPES
    profile = wait_for(lambda: profile_of(server, keys.test, "py0-user"), what="profile")
    assert profile["email"] == "py@example.org"


def node_modules_or_fail() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is not installed: this test drives Segment's Node library. Install "
            "Node 18+ (Debian: apt-get install nodejs npm), then run `make test`."
        )
    if not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").is_dir():
        pytest.fail(
            "@segment/analytics-node is not installed under tests/tracking/node. `make test` "
            "installs it; by hand: npm install --prefix tests/tracking/node"
        )
    return node


def test_analytics_node_sends_every_type_and_a_500_event_flush(
    server: LiveServer, keys: Keys, runtime: Runtime
) -> None:
    node = node_modules_or_fail()
    completed = processes.run(
        [node, "send.mjs"],
        cwd=NODE_DIR,
        env={
            **os.environ,
            "TIDINGS_URL": server.url,
            "WRITE_KEY": keys.test,
            "RUN": "n1",
            "COUNT": str(BULK),
        },
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"errors": []}
    expected = {f"node-n1-{t}" for t in TYPES} | {f"node-n1-bulk-{n}" for n in range(BULK)}
    rows = assert_landed_once(runtime, "node-n1-", expected)
    assert {row["type"] for row in rows} == TYPES
    node_track = next(row for row in rows if row["message_id"] == "node-n1-track")
    assert node_track["payload"]["context"]["library"]["name"] == "@segment/analytics-node"
    profile = wait_for(lambda: profile_of(server, keys.test, "node-user-n1"), what="profile")
    assert profile["plan"] == "pro"
