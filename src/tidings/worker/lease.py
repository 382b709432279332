"""Worker leases: which consumer processes are alive.

Each consumer process (`tidings serve` with consumer threads, `tidings worker`) holds a lease,
a `worker_lease` row whose `heartbeat_at` a thread renews every `lease seconds / 5`. Work the
process carries out outside a transaction, a delivery's provider call, is stamped with the
lease id (`message_delivery.owner`). A lease not renewed for `TIDINGS_WORKER_LEASE_SECONDS`
has expired: its process is gone (or stalled that long), and the sweeper re-drives its work at
once rather than after a fixed age. Each heartbeat also looks for expired leases; the process
that deletes one (only one can) re-drives everything pending, since the jobs that process had
taken from the queue died with it; and once more a lease period later. A re-drive leaves alone
the rows another sweep claimed within the last lease period (they are that sweep's jobs), and
the dead process may have claimed some after its last heartbeat, less than a lease period
before its lease was found expired; by the second re-drive every claim it made is older.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from tidings.config import Settings
from tidings.db import Database
from tidings.kit.time import utcnow
from tidings.worker.repository import LeaseRepository

logger = logging.getLogger(__name__)

# Heartbeats per lease period: a lease survives four missed beats.
BEATS_PER_LEASE = 5


class Lease:
    """This process's lease. `owner` is its id while it is held, else None: work started by
    a process without a lease (no consumer) is left to the fixed-age backstop."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.id = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.owner: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_expired: Callable[[], object] = lambda: None

    @property
    def interval(self) -> float:
        return self.settings.worker_lease_seconds / BEATS_PER_LEASE

    def start(self) -> None:
        """Take the lease and renew it from a thread until `stop`."""
        if self._thread is not None:
            return
        self._beat()
        self.owner = self.id
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tidings-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and give the lease up (its work, if any is left, is re-driven at
        once by the next sweep)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=10)
        self.owner = None
        try:
            with self.database.write() as (session, _):
                LeaseRepository(session).give_up(self.id)
        except Exception:
            logger.warning("could not give up worker lease %s", self.id, exc_info=True)

    def _run(self) -> None:
        again_at: float | None = None  # when to re-drive a dead process's work once more
        while not self._stop.wait(self.interval):
            try:
                self._beat()
                if self.claim_expired():
                    self.on_expired()
                    again_at = time.monotonic() + self.settings.worker_lease_seconds
                elif again_at is not None and time.monotonic() >= again_at:
                    again_at = None
                    self.on_expired()
            except Exception:
                logger.warning("worker lease %s: heartbeat failed", self.id, exc_info=True)

    def _beat(self) -> None:
        with self.database.write() as (session, _):
            LeaseRepository(session).renew(self.id, utcnow())

    def claim_expired(self) -> list[str]:
        """Delete the expired leases, returning those this call deleted: when two processes
        find the same expired lease, one of them gets it."""
        cutoff = utcnow() - timedelta(seconds=self.settings.worker_lease_seconds)
        with self.database.read() as session:
            expired = LeaseRepository(session).expired(cutoff)
        claimed = []
        for lease_id in expired:
            with self.database.write() as (session, _):
                if LeaseRepository(session).claim_expired(lease_id, cutoff):
                    claimed.append(lease_id)
        if claimed:
            logger.warning("worker lease(s) expired: %s; re-driving their work", claimed)
        return claimed
