"""The processes the tests start, and how long the tests wait for anything.

Every child process a test starts (`tidings serve`, `tidings worker`, the CLI, node) goes
through `start` or `run`: in a session of its own, so that it is a process group the tests
can kill whole, out of reach of the terminal's Ctrl-C (the test decides when it ends). It is
registered until it is reaped, and three nets reap it:

- the test's own finalizer: a fixture's teardown or a `finally` calls `stop` or `kill`;
- `reap_all`, at the end of the pytest session (tests/conftest.py) and at interpreter exit;
- a guardian: one small process per test process, told through a pipe which groups are
  live. When the test process dies in any way, SIGKILL included, the pipe closes and the
  guardian kills every group still registered.

`tidings` itself (`python -m tidings ...`) is forked from a process that has imported it
already (tests/preloaded.py): the same command, without two seconds of imports each time.
TIDINGS_TEST_PRELOAD=0 starts a fresh interpreter instead.

Deadlines only bound how long a broken test takes to fail: a passing test waits for its
condition, never for the deadline. So they are generous, and `scaled` multiplies them by
TIDINGS_TEST_TIMEOUT_SCALE (default 1) for a machine slower or busier still.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

T = TypeVar("T")

PRELOAD = os.environ.get("TIDINGS_TEST_PRELOAD", "1") != "0"

TIMEOUT_SCALE = float(os.environ.get("TIDINGS_TEST_TIMEOUT_SCALE", "1"))
# How long a condition may take to come true (wait_for), and a process to start or finish.
WAIT_SECONDS = 60.0
START_SECONDS = 120.0
# How long `stop` lets a process shut down after SIGTERM before it kills the group.
STOP_GRACE_SECONDS = 15.0


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


# For a request to a live `tidings serve`: httpx's 5 s is short for a busy machine.
HTTP_TIMEOUT = scaled(WAIT_SECONDS)


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = WAIT_SECONDS,
    what: str = "",
    details: Callable[[], str] | None = None,
) -> T:
    """Poll until `predicate` returns something truthy, and return it. Fail the test after
    `scaled(timeout)` seconds, with `details()` (a log, say) in the message."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            more = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {limit:g}s waiting for {what or predicate}{more}")
        time.sleep(0.05)


# Reads "+pgid" and "-pgid" lines; at end of file (the test process is gone, however it
# ended), SIGKILLs the groups still registered.
_GUARDIAN = """\
import os, signal, sys
groups = set()
for line in sys.stdin:
    (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_guardian: subprocess.Popen[bytes] | None = None


def _tell_guardian(line: str) -> None:
    global _guardian
    lines = [line]
    if _guardian is None or _guardian.poll() is not None:
        _guardian = subprocess.Popen(
            [sys.executable, "-c", _GUARDIAN],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        lines = [f"+{pid}" for pid in _live] + lines
    stream = _guardian.stdin
    assert stream is not None
    with contextlib.suppress(OSError):  # the guardian died: the other nets remain
        stream.write("".join(f"{each}\n" for each in lines).encode())
        stream.flush()


class Forked:
    """A `python -m tidings` command forked from the preloaded fork server, with the part of
    subprocess.Popen's interface the tests use: `pid` (which is also its process group),
    `poll`, `wait` and `returncode` (negative: the signal that ended it)."""

    def __init__(self, args: Sequence[str], process: multiprocessing.process.BaseProcess) -> None:
        self.args = list(args)
        self.pid: int = process.pid or 0
        self._process = process

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code


Child = subprocess.Popen[Any] | Forked
_live: dict[int, Child] = {}
_context: Any = None


def _is_tidings(args: Sequence[str]) -> bool:
    return PRELOAD and list(args[:3]) == [sys.executable, "-m", "tidings"]


def _fork(
    args: Sequence[str], env: Mapping[str, str], cwd: Path | None, streams: tuple[str, str, str]
) -> Forked:
    """Fork `args` (`python -m tidings ...`) from the fork server that imported
    tests/preloaded.py, and register it once it leads its own process group."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["tests.preloaded"])
    from tests import preloaded

    process = _context.Process(
        target=preloaded.run,
        args=(list(args[3:]), dict(env), str(cwd) if cwd else None, *streams),
        # multiprocessing terminates a daemon child at exit rather than waiting for it.
        daemon=True,
    )
    process.start()
    forked = Forked(args, process)
    # The child calls setsid() first: until it has, a kill of its group would miss it.
    with contextlib.suppress(ProcessLookupError):
        while os.getpgid(forked.pid) != forked.pid and forked.poll() is None:
            time.sleep(0.001)
    _register(forked)
    return forked


def _register(process: Child) -> None:
    _live[process.pid] = process
    _tell_guardian(f"+{process.pid}")


def _spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    process: subprocess.Popen[Any] = subprocess.Popen(args, start_new_session=True, **popen)
    _register(process)
    return process


def start(
    args: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> Child:
    """Start a child process, its output appended to `log_path`. The caller stops it (`stop`,
    `kill`) in a finalizer."""
    if _is_tidings(args):
        return _fork(args, env, cwd, (os.devnull, str(log_path), str(log_path)))
    with log_path.open("ab") as log:
        process: subprocess.Popen[bytes] = _spawn(
            args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return process


def _signal_group(process: Child, signum: int) -> None:
    # The group outlives its leader while any member lives, and its id is not reused
    # meanwhile; once none is left, there is nothing to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def kill(process: Child) -> None:
    """SIGKILL the process's whole group (no shutdown hooks, no flushing) and reap it."""
    try:
        _signal_group(process, signal.SIGKILL)
        process.wait(scaled(START_SECONDS))
    finally:
        if _live.pop(process.pid, None) is not None:
            _tell_guardian(f"-{process.pid}")


def stop(process: Child, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process's group, let it shut down for up to `scaled(grace)` seconds, then
    kill whatever is left of the group. Safe to call again, or after `kill`."""
    try:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(scaled(grace))
    finally:
        kill(process)


def run(
    args: Sequence[str],
    env: Mapping[str, str],
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = START_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run a child process to its end, as `subprocess.run(..., capture_output=True,
    text=True)`; fail the test if it takes longer than `scaled(timeout)` seconds. The
    process group is killed whatever happens, an interrupt included."""
    if _is_tidings(args):
        return _run_forked(args, env, input, cwd, timeout)
    process = _spawn(
        args,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(input, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        kill(process)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"{' '.join(args)} did not finish within {scaled(timeout):g}s\n"
            f"stdout:\n{stdout}\nstderr:\n{stderr}"
        )
    finally:
        kill(process)
        _close(process.stdin, process.stdout, process.stderr)
    return subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr)


def _run_forked(
    args: Sequence[str],
    env: Mapping[str, str],
    input: str | None,
    cwd: Path | None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """`run` for a forked `tidings` command: its streams are files in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="tidings-run-") as directory:
        stdin, stdout, stderr = (Path(directory, name) for name in ("stdin", "stdout", "stderr"))
        stdin.write_text(input or "")
        process = _fork(args, env, cwd, (str(stdin), str(stdout), str(stderr)))
        try:
            process.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            kill(process)
            pytest.fail(
                f"{' '.join(args)} did not finish within {scaled(timeout):g}s\n"
                f"stdout:\n{_text(stdout)}\nstderr:\n{_text(stderr)}"
            )
        finally:
            kill(process)
        return subprocess.CompletedProcess(
            list(args), process.returncode, _text(stdout), _text(stderr)
        )


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _close(*streams: IO[Any] | None) -> None:
    for stream in streams:
        if stream is not None:
            stream.close()


def reap_all() -> None:
    """Kill every process still registered, then let the guardian go."""
    global _guardian
    for process in list(_live.values()):
        with contextlib.suppress(Exception):
            kill(process)
    if _guardian is not None:
        _close(_guardian.stdin)
        with contextlib.suppress(subprocess.TimeoutExpired):
            _guardian.wait(scaled(STOP_GRACE_SECONDS))
        _guardian = None


atexit.register(reap_all)
