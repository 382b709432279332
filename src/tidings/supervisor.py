"""`tidings serve`'s job consumer in a child process of its own.

With `TIDINGS_SERVE_CONSUMER=process`, `serve` runs the API alone in its interpreter and
supervises a `tidings worker` child on the same data dir (SQLite in WAL mode takes writers
from both processes): the child is started with the server, started again if it dies, and
stopped with the server. The child stops by itself when its parent is gone, so a server
killed outright leaves no consumer behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# A child that died is started again after this long, doubling up to RESTART_MAX_SECONDS
# while it keeps dying young (sooner than RESTART_MAX_SECONDS after its start).
RESTART_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STOP_SECONDS = 15.0


class ConsumerProcess:
    def __init__(self, data_dir: Path, threads: int) -> None:
        self.command = [
            sys.executable,
            "-m",
            "tidings",
            "worker",
            "--data-dir",
            str(data_dir),
            "--workers",
            str(threads),
            "--parent",
            str(os.getpid()),
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="consumer-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                # In the server's process group: a Ctrl-C or a group signal reaches both.
                self._process = subprocess.Popen(self.command)

    def _watch(self) -> None:
        delay = RESTART_SECONDS
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            delay = (
                RESTART_SECONDS
                if lived >= RESTART_MAX_SECONDS
                else min(delay * 2, RESTART_MAX_SECONDS)
            )
            logger.error("the job consumer exited with %s; starting it again in %.0fs", code, delay)
            if self._stopping.wait(delay):
                return
            self._spawn()

    def stop(self) -> None:
        """SIGTERM the child (Huey finishes nothing new and exits), SIGKILL if it lingers."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exit_with_parent(parent: int) -> None:
    """In the child: a thread that stops this process (SIGTERM to itself, as `serve` would)
    once `parent` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
