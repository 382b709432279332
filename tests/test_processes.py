"""The helper that starts and reaps the tests' child processes (tests/processes.py)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import Keys, LiveServer, Serve, server_environment
from tests.processes import wait_for
from tidings.config import Settings
from tidings.runtime import Runtime

REPO = Path(__file__).resolve().parent.parent
# A child that starts a grandchild, prints the grandchild's pid, and sleeps.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(600)
    """
)
# A stand-in for a pytest process: starts a child through the helper, prints its pid, sleeps.
TEST_PROCESS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from tests import processes
    log = Path(sys.argv[1])
    child = processes.start([sys.executable, "-c", "import time; time.sleep(600)"],
                            env=dict(os.environ), log_path=log)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _printed_pid(log: Path) -> int:
    def pid() -> int | None:
        text = log.read_text() if log.exists() else ""
        return int(text.split()[0]) if text.split() else None

    return wait_for(pid, what=f"a pid in {log.name}")


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    log = tmp_path / "parent.log"
    parent = processes.start([sys.executable, "-c", PARENT], env=dict(os.environ), log_path=log)
    grandchild = _printed_pid(log)
    assert _alive(grandchild)
    processes.stop(parent)
    assert parent.returncode is not None
    wait_for(lambda: not _alive(grandchild), what="the grandchild to be killed")


def test_run_kills_a_child_that_overruns_its_deadline(tmp_path: Path) -> None:
    log = tmp_path / "parent.log"
    with pytest.raises(pytest.fail.Exception, match="did not finish within"):
        processes.run(
            [sys.executable, "-c", f"import sys; sys.stdout = open({str(log)!r}, 'w'); {PARENT}"],
            env=dict(os.environ),
            timeout=1.0 / processes.TIMEOUT_SCALE,
        )
    wait_for(lambda: not _alive(_printed_pid(log)), what="the grandchild to be killed")


def test_the_guardian_kills_what_a_killed_test_process_left(tmp_path: Path) -> None:
    log = tmp_path / "test-process.log"
    test_process = processes.start(
        [sys.executable, "-c", TEST_PROCESS, str(tmp_path / "child.log")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        log_path=log,
    )
    child = _printed_pid(log)
    assert _alive(child)
    # SIGKILL: no finalizer, no atexit in the test process; only its guardian is left.
    os.kill(test_process.pid, signal.SIGKILL)
    wait_for(lambda: not _alive(child), what="the guardian to kill the child")
    processes.stop(test_process)


@pytest.mark.backend_independent  # the server exits on its settings, before any database
def test_a_server_that_exits_at_start_fails_at_once_with_its_log(
    settings: Settings, tmp_path: Path
) -> None:
    server = LiveServer(settings, tmp_path / "serve.log", TIDINGS_JOB_STORAGE="bogus")
    with pytest.raises(pytest.fail.Exception, match="TIDINGS_JOB_STORAGE='bogus'") as failed:
        server.start()
    assert "tidings serve exited early" in str(failed.value)
    assert server.process is not None
    assert server.process.returncode is not None
    assert server.process.pid not in processes._live


def _session_and_group(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[3]), int(fields[2])


def test_a_started_server_leads_its_own_session_and_stops_cleanly(serve: Serve) -> None:
    """Forked from the preloaded fork server or not (tests/preloaded.py), `tidings serve` is
    the leader of a session and group of its own, and SIGTERM ends it as it ends uvicorn."""
    server = serve()
    assert server.process is not None
    pid = server.process.pid
    assert _session_and_group(pid) == (pid, pid)
    server.stop()
    # uvicorn shuts down, then ends itself with the signal it was sent.
    assert server.process.returncode == -signal.SIGTERM


def test_each_tidings_command_runs_with_its_own_environment(
    settings: Settings, runtime: Runtime, keys: Keys
) -> None:
    """Commands forked from one fork server do not share settings: each reads the
    environment it was given, and leaves none behind for the next."""
    command = [sys.executable, "-m", "tidings", "keys", "list"]
    listed = processes.run(command, env=server_environment(settings))
    assert listed.returncode == 0, listed.stderr
    assert keys.test in listed.stdout.split()
    refused = processes.run(
        command, env=server_environment(settings, TIDINGS_REPLAY_PROCESSES="many")
    )
    assert refused.returncode != 0
    assert "TIDINGS_REPLAY_PROCESSES" in refused.stderr
    again = processes.run(command, env=server_environment(settings))
    assert again.returncode == 0, again.stderr
    assert again.stdout == listed.stdout
