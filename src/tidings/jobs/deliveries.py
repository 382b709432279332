"""Provider calls off the consumer threads.

A consumer thread routes messages and marks each attempt `sending` (owned by this process)
in the routing transaction, then hands the started attempt to the delivery pool and goes on
with its next job. The pool's threads call the providers and record the outcomes, each in a
transaction of its own (`pipeline.attempt_delivery`). So a provider's latency (the SMTP
round trips, an HTTP API's tens or hundreds of milliseconds) and each outcome's commit
overlap with processing and with each other, up to `threads` sends at once per process.

Bounded: at most `threads` attempts wait for a free thread, and a job that hands over more
waits for one (backpressure, not a growing queue). Nothing is lost if the process dies: the
attempts it held are `sending` deliveries of an owner whose lease expires, and the sweep
re-drives them (`pipeline.redrive_stuck_deliveries`). Those whose provider call had begun may
be sent twice, as before; a process now has up to `threads` such calls in flight.

While the pool is not running (no consumer in this process: tests, tools), an attempt is
carried out by the thread that hands it over.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from tidings.message import pipeline
from tidings.message.pipeline import Attempt
from tidings.worker.context import WorkerContext

logger = logging.getLogger(__name__)


class DeliveryPool:
    """Threads that carry out started provider attempts."""

    def __init__(self, context: WorkerContext, threads: int) -> None:
        self._context = context
        self.threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Attempts running or waiting for a thread: at most two per thread.
        self._slots = threading.BoundedSemaphore(2 * self.threads)

    def start(self) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="tidings-delivery"
                )

    def stop(self, *, finish: bool = True) -> None:
        """Stop taking attempts; with `finish`, carry out those handed over first, else
        leave the ones not begun to the sweep (they stay `sending` under this process's
        lease)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=not finish)

    def submit(self, attempt: Attempt) -> None:
        """Carry out the attempt on a pool thread (waiting for a free slot), or here while
        the pool is not running."""
        self._slots.acquire()
        with self._lock:
            executor = self._executor
            if executor is not None:
                executor.submit(self._run, attempt)
                return
        self._slots.release()
        pipeline.attempt_delivery(self._context, attempt)

    def _run(self, attempt: Attempt) -> None:
        try:
            pipeline.attempt_delivery(self._context, attempt)
        except Exception:
            # Left `sending`: the sweep re-drives it after TIDINGS_SENDING_STALE_SECONDS.
            logger.exception("delivery %d of %s failed", attempt.delivery_id, attempt.message_id)
        finally:
            self._slots.release()
