"""Replay processes: each replay runs in a child process of the worker that took its job, so
that it never holds the worker's interpreter (its GIL) or its consumer threads.

- The child runs at the lowest CPU priority (nice 19): on a busy machine, live processing
  goes first.
- Its address space is capped (`TIDINGS_REPLAY_MEMORY_MB`) and its time too
  (`TIDINGS_REPLAY_TIMEOUT_SECONDS`, checked between chunks and jobs; the parent kills a
  child that outlives it by a minute).
- At most `TIDINGS_REPLAY_PROCESSES` run per worker; a job that finds none free comes back
  later.
- A thread waits for each child: a child that ended without finishing its replay (killed,
  out of memory) leaves it failed. A worker that stops kills its children; their replays'
  leases expire and a sweep hands them to a process again (at most MAX_ATTEMPTS times).

The child is `python -m tidings.replay_run.child REPLAY_PK`, with the parent's TIDINGS_* settings in
its environment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from tidings.config import Settings
from tidings.db import Database
from tidings.kit.time import utcnow
from tidings.replay import service

logger = logging.getLogger(__name__)

# A child is killed this long after its own time limit has passed.
KILL_GRACE_SECONDS = 60.0


class ReplayProcesses:
    """The replay children of one worker process."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._closed = False

    def running(self) -> int:
        with self._lock:
            return sum(child.poll() is None for child in self._children.values())

    def pid(self, replay_pk: int) -> int | None:
        """The process id of the replay's running child, if any."""
        with self._lock:
            child = self._children.get(replay_pk)
            return child.pid if child is not None and child.poll() is None else None

    def start(self, replay_pk: int) -> bool:
        """Start a child for the replay (True), or say that none is free (False). A replay
        this worker runs already is left to its child."""
        with self._lock:
            if self._closed:
                return False
            child = self._children.get(replay_pk)
            if child is not None and child.poll() is None:
                return True
            busy = sum(other.poll() is None for other in self._children.values())
            if busy >= self.settings.replay_processes:
                return False
            child = subprocess.Popen(
                [sys.executable, "-m", "tidings.replay_run.child", str(replay_pk)],
                env=child_environment(self.settings),
                stdin=subprocess.DEVNULL,
            )
            self._children[replay_pk] = child
        threading.Thread(
            target=self._wait, args=(replay_pk, child), name=f"replay-{replay_pk}", daemon=True
        ).start()
        return True

    def _wait(self, replay_pk: int, child: subprocess.Popen[bytes]) -> None:
        limit = self.settings.replay_timeout_seconds + KILL_GRACE_SECONDS
        try:
            code = child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        with self._lock:
            if self._children.get(replay_pk) is child:
                del self._children[replay_pk]
            closed = self._closed
        if closed:
            return
        if code != 0:
            logger.warning("replay process for replay %d ended with %d", replay_pk, code)
            try:
                service.fail(self.database, replay_pk, ended(code))
            except Exception:  # the sweep hands it out again once its lease expires
                logger.exception("could not mark replay %d failed", replay_pk)
        # Its place is free: a queued replay can have it now.
        self.keep(freed=True)

    def keep(self, *, freed: bool = False) -> int:
        """Queue the replays nobody runs (queued and waiting, or left by a process that
        died), fail those that stopped too often, and delete the expired; returns how many
        were queued. A failure is logged: the next sweep tries again. Every sweep calls it,
        and so does a child's end (`freed`), which queues every queued replay again at
        once rather than those queued for QUEUED_WAIT_SECONDS."""
        try:
            queued = service.keep(
                self.database, queued_for=0.0 if freed else service.QUEUED_WAIT_SECONDS
            )
            service.expire(self.database, utcnow())
        except Exception:
            logger.exception("keeping the replays failed")
            return 0
        return queued

    def close(self) -> None:
        """Stop every child (their replays are taken up again later, see the module)."""
        with self._lock:
            self._closed = True
            children = list(self._children.values())
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10.0
        for child in children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def ended(code: int) -> str:
    if code == -9:
        return (
            "the replay process was killed (out of memory, or past its time limit); "
            "replay a shorter window or fewer events"
        )
    return f"the replay process ended with status {code} before it finished"


def child_environment(settings: Settings) -> dict[str, str]:
    """The child's environment: the parent's, with the settings it needs spelled out (the
    parent may have been given them as options)."""
    env = dict(os.environ)
    env["TIDINGS_DATA_DIR"] = str(settings.data_dir)
    env["TIDINGS_DATABASE_URL"] = settings.resolved_database_url()
    env["TIDINGS_SQLITE_SYNCHRONOUS"] = settings.sqlite_synchronous
    env["TIDINGS_REPLAY_TIMEOUT_SECONDS"] = str(settings.replay_timeout_seconds)
    env["TIDINGS_REPLAY_MEMORY_MB"] = str(settings.replay_memory_mb)
    return env
