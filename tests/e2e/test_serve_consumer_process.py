"""`TIDINGS_SERVE_CONSUMER=process`: `tidings serve` supervises a `tidings worker` child."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx

from tests.conftest import Serve, cli_keys, wait_for
from tests.payloads import SEGMENT_HEADERS, identify
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings


def _children(pid: int) -> list[int]:
    """The `tidings worker` processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"worker" in command and b"--parent" in command:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processed(url: str, key: str, user_id: str, trait: int) -> bool:
    response = httpx.get(
        f"{url}/profiles/{user_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    return response.status_code == 200 and response.json()["profile"].get("trait1") == trait


def _send(url: str, key: str, user_id: str, trait: int) -> None:
    event = identify(userId=user_id, messageId=f"{user_id}-{trait}", traits={"trait1": trait})
    response = httpx.post(
        f"{url}/inbound/segment",
        content=json.dumps(event),
        headers={**SEGMENT_HEADERS, "Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 202, response.text


def test_the_child_processes_events_is_restarted_and_stops_with_the_server(
    serve: Serve, settings: Settings
) -> None:
    server = serve(TIDINGS_SERVE_CONSUMER="process")
    assert server.process is not None
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    (child,) = wait_for(lambda: _children(server.process.pid), what="the consumer child")

    _send(server.url, key, "child-1", 1)
    wait_for(lambda: _processed(server.url, key, "child-1", 1), what="processed by the child")

    # A consumer that dies is started again, and its replacement processes what comes next.
    os.kill(child, signal.SIGKILL)
    (replacement,) = wait_for(
        lambda: [pid for pid in _children(server.process.pid) if pid != child],
        what="a new consumer child",
        details=server.log,
    )
    _send(server.url, key, "child-2", 2)
    wait_for(lambda: _processed(server.url, key, "child-2", 2), what="processed after a restart")

    server.stop()
    assert not _alive(replacement)


def test_the_child_exits_when_the_server_is_killed(serve: Serve) -> None:
    server = serve(TIDINGS_SERVE_CONSUMER="process")
    assert server.process is not None
    (child,) = wait_for(lambda: _children(server.process.pid), what="the consumer child")
    # SIGKILL to the server alone (not its group): no shutdown hook runs, and the child
    # notices that its parent is gone.
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    wait_for(lambda: not _alive(child), what="the orphaned consumer to exit", details=server.log)
