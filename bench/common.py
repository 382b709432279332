"""Helpers both benchmarks share: ports, process groups, the API key, the filesystem."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from pathlib import Path


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process group (uvicorn shuts down gracefully), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def api_key(tidings: str, data_dir: Path, env: dict[str, str]) -> str:
    """An active key of the data dir's workspace, the test environment's first."""
    output = subprocess.run(
        [tidings, "keys", "list", "--json", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    ).stdout
    keys = [row for row in json.loads(output) if not row.get("revoked")]
    if not keys:
        raise BenchError("`tidings keys list --json` returned no active key")
    keys.sort(key=lambda row: row["environment"] != "test")
    return str(keys[0]["key"])


def filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount, fstype = parts[1], parts[2]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return kind
