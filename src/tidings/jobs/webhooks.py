"""Outbound webhook requests on threads of their own.

A `webhook.deliver` job only hands its delivery to this pool and returns: the request, up to
`TIDINGS_WEBHOOK_TIMEOUT_SECONDS` for a slow or dead endpoint, is never made on a consumer
thread (which routes messages) nor on the delivery pool (which calls providers). At most
`threads` requests run at once and WAITING_PER_THREAD times as many wait (delivery ids:
small); `submit` never blocks: when the pool is full it says so, and the job is queued again
a little later (the delivery stays `pending`, and the sweeper re-drives it if that job is
lost).

While the pool is not running (no consumer in this process: tests, tools), an attempt is
made by the thread that hands it over.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from tidings.webhook_out import delivery
from tidings.worker.context import WorkerContext

logger = logging.getLogger(__name__)

WAITING_PER_THREAD = 25


class WebhookPool:
    def __init__(self, context: WorkerContext, threads: int) -> None:
        self._context = context
        self.threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore((1 + WAITING_PER_THREAD) * self.threads)

    def start(self) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="tidings-webhook"
                )

    def stop(self) -> None:
        """Stop taking deliveries; requests under way finish (within their timeout), those
        not begun stay `pending` for the sweeper."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, delivery_id: int) -> bool:
        """Attempt the delivery on a pool thread; False, at once, when the pool is full."""
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            executor = self._executor
            if executor is not None:
                future = executor.submit(self._run, delivery_id)
                future.add_done_callback(lambda _: self._slots.release())
                return True
        try:
            delivery.attempt(self._context, delivery_id)
        finally:
            self._slots.release()
        return True

    def _run(self, delivery_id: int) -> None:
        try:
            delivery.attempt(self._context, delivery_id)
        except Exception:
            # Left `pending` or `sending`: the sweeper re-drives it.
            logger.exception("webhook delivery %d failed", delivery_id)
