"""Ingest first: the in-process consumer gives way while requests wait on the ingest writer.

`tidings serve` answers requests and processes events in one process, and Python runs one
thread at a time. When events arrive faster than one writer can commit them, every moment
the consumer threads spend processing is a moment the waiting requests are not answered,
and Segment (or an SDK) times out and sends again. So while the writer has been busy for
more than half of the last half second and requests queued up for it (its batches held two
requests or more on average), each consumer thread waits before its next job, for at
most a tenth of a second, then does it one event at a time (a single event, not a group
of them, looking again before each), and finishes what those events started (their runs,
messages and sends) without waiting again: a burst is acknowledged at full speed and
processed right after it, processing never stops entirely, and an event once taken up is
not held back between its stages.

Both conditions matter. At a steady, moderate rate the writer can be busy half of the time
while it waits for the consumer's own transactions and for the interpreter, yet each
request finds it free and is written alone: nothing is waiting, so nothing gives way.
The writer's enqueuer reads the same signal: while the writer is saturated it hands the new
event ids to the job engine in one job every 50 ms rather than one per batch
(tidings.ingest.writer). `TIDINGS_INGEST_PRIORITY=false` turns the consumer's pause off;
`tidings worker` processes never wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 0.5
BUSY_SHARE = 0.5
# Requests per batch, on average over the window, that show requests are queueing.
QUEUED_REQUESTS = 2.0
# Short enough that a pause alone never takes an event past the pipeline's latency budget
# (p99 250 ms): with a second, a steady rate near the writer's threshold tipped into pauses
# that held events back for most of that second.
MAX_PAUSE_SECONDS = 0.1
POLL_SECONDS = 0.02


def no_pause() -> bool:
    """The pace of a consumer that never gives way."""
    return False


class IngestPressure:
    """How busy the ingest writer has been lately, and a pause for work that can wait."""

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        busy_share: float = BUSY_SHARE,
        max_pause: float = MAX_PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.window = window
        self.threshold = busy_share
        self.max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # (started, ended, requests) of each recent batch.
        self._spans: deque[tuple[float, float, int]] = deque()
        self._writing_since: float | None = None
        self._writing_requests = 0
        self.pauses = 0
        self.paused_seconds = 0.0

    def started(self, requests: int = 1) -> None:
        """The writer took a batch of this many requests."""
        with self._lock:
            self._writing_since = self._clock()
            self._writing_requests = requests

    def finished(self) -> None:
        """The writer's batch is committed (or failed)."""
        with self._lock:
            if self._writing_since is None:
                return
            now = self._clock()
            self._spans.append((self._writing_since, now, self._writing_requests))
            self._writing_since = None
            self._forget(now)

    def busy_share(self) -> float:
        """The share of the last `window` seconds the writer spent writing."""
        with self._lock:
            now = self._clock()
            self._forget(now)
            since = now - self.window
            busy = sum(end - max(start, since) for start, end, _ in self._spans)
            if self._writing_since is not None:
                busy += now - max(self._writing_since, since)
            return min(busy / self.window, 1.0)

    def requests_per_batch(self) -> float:
        """Requests per batch over the last `window` seconds (0 without batches)."""
        with self._lock:
            self._forget(self._clock())
            batches = len(self._spans) + (self._writing_since is not None)
            if not batches:
                return 0.0
            requests = sum(requests for _, _, requests in self._spans)
            if self._writing_since is not None:
                requests += self._writing_requests
            return requests / batches

    def saturated(self) -> bool:
        return self.busy_share() > self.threshold and self.requests_per_batch() >= QUEUED_REQUESTS

    def wait_for_turn(self) -> bool:
        """Wait while ingest is saturated, at most `max_pause` seconds. True if it still is:
        the caller then does as little as it can (one event) before it asks again."""
        if not self.saturated():
            return False
        started = self._clock()
        deadline = started + self.max_pause
        still = True
        while self._clock() < deadline:
            still = self.saturated()
            if not still:
                break
            self._sleep(POLL_SECONDS)
        with self._lock:
            self.pauses += 1
            self.paused_seconds += self._clock() - started
        return still

    def _forget(self, now: float) -> None:
        since = now - self.window
        while self._spans and self._spans[0][1] <= since:
            self._spans.popleft()
