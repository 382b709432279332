"""`python -m tidings ARGS`, forked from a process that has imported Tidings already.

A fresh interpreter spends about two seconds of CPU importing what `tidings serve` needs, and
the tests start `tidings serve`, `tidings worker` and the CLI a few hundred times. So
tests/processes.py starts them through multiprocessing's fork server, which imports this
module (and with it the server's whole import graph) once per test process and forks a child
for each command. The child is made the same process a fresh `python -m tidings ARGS` would
be: a session of its own, the given environment, working directory and standard streams,
the default signal handlers, then the same `main`. Only what the imports cost is shared.

Modules that read the environment at import time would see the fork server's environment
rather than the command's; Tidings reads its settings when a command runs (config.Settings),
and tests/test_processes.py checks that a setting given to one command reaches it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence

import uvicorn

import tidings.app
import tidings.cli
import tidings.migrate
import tidings.runtime

# The import graph of `tidings serve` and `tidings worker`, which the CLI imports lazily.
PRELOADED = (tidings.app, tidings.migrate, tidings.runtime, uvicorn)


def run(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    stdin: str,
    stdout: str,
    stderr: str,
) -> None:
    """The child's body: become `python -m tidings ARGS` with these streams (paths), and
    exit as it would (click's `main` raises SystemExit with the command's status)."""
    os.setsid()
    for fd, path, flags in (
        (0, stdin, os.O_RDONLY),
        (1, stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT),
        (2, stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    # As an interpreter started with these streams would: stdout block-buffered (a file),
    # stderr line-buffered.
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = [os.path.join(os.path.dirname(tidings.cli.__file__), "__main__.py"), *args]
    tidings.cli.main(list(args), prog_name="python -m tidings")
