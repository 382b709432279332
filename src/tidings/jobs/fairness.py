"""Fair shares of the job queue between environments.

Huey takes the queued job of highest priority first, and the oldest among equals. A job of
events gets as its priority the negative of its environment's recent load: the events this
process queued for that environment lately, halving every `half_life` seconds, this job's
included. An
environment that is flooding (a load test in `test`, a backfill) queues its jobs at ever
lower priorities, so the next job of a quiet environment goes ahead of its backlog instead
of behind it; once the flood stops, its load fades and its jobs compete as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

HALF_LIFE_SECONDS = 10.0
# More environments than this in one process: the quietest are forgotten (load 0).
MAX_ENVIRONMENTS = 10_000


class FairShare:
    def __init__(
        self,
        half_life: float = HALF_LIFE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.half_life = half_life
        self.clock = clock
        self._load: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def priority(self, environment_id: str, items: int) -> int:
        """The priority of a job of `items` for this environment: minus its load, this job
        included (a large job of a quiet environment waits behind a small one)."""
        now = self.clock()
        with self._lock:
            load, at = self._load.get(environment_id, (0.0, now))
            load *= 0.5 ** ((now - at) / self.half_life)
            if len(self._load) >= MAX_ENVIRONMENTS and environment_id not in self._load:
                self._forget_quietest()
            load += items
            self._load[environment_id] = (load, now)
        return -int(load)

    def _forget_quietest(self) -> None:
        ranked = sorted(self._load.items(), key=lambda entry: entry[1][0])
        for environment_id, _ in ranked[: len(ranked) // 2]:
            del self._load[environment_id]
