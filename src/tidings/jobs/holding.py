"""New events held for the event job about to start, rather than queued in jobs of their own.

The ingest writer hands each commit's new events to the job engine, which queued a job for
them. Under load those jobs pile up behind the one running, and by the time a thread takes
one, an earlier job has usually taken its events already (on SQLite a job fills its group
with the oldest waiting events): each cost a write to the queue and a read from it, and
the ingest writer's enqueuer spent more time queueing than the writer did writing.

So, on SQLite in a process that runs consumer threads, while an event job this process
queued has not started here yet, new events are held in memory instead. The next event job
to start in this process takes them into its own, up to a group (`GROUP_EVENTS`) in all, so
that it routes and sends what its events started as soon as before, and queues the rest in
jobs of a bounded size (held events and those jobs go at the default priority: they run next
anyway). If the job was taken by another process (a `tidings worker` beside `tidings
serve`), a thread of this one that finds the queue empty queues what is held, so nothing
waits longer than an idle thread's poll. Held events are in the database already
(`received`): if the process dies, the sweep re-drives them, as it does a lost job.
"""

from __future__ import annotations

import threading

from tidings.kit.sql import chunks


class HeldEvents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._enabled = False
        # Event jobs this process queued that have not started here yet.
        self._unstarted = 0
        self._held: list[int] = []

    def enable(self) -> None:
        """This process consumes a SQLite queue: hold from now on."""
        with self._lock:
            self._enabled = True

    def hold(self, event_ids: list[int], jobs: int = 1) -> bool:
        """Keep the events for the next event job to start, if one is queued; whether they
        were kept. When not, the caller queues them in `jobs` jobs, which count as queued."""
        with self._lock:
            if self._enabled and self._unstarted > 0:
                self._held.extend(event_ids)
                return True
            self._unstarted += jobs
            return False

    def started(self, room: int, per_job: int) -> tuple[list[int], list[list[int]]]:
        """An event job starts in this process: the events held for it, at most `room` of
        them, and the rest in jobs of at most `per_job` events, for the caller to queue
        (counted)."""
        with self._lock:
            self._unstarted = max(0, self._unstarted - 1)
            taken, rest = self._held[:room], self._held[room:]
            self._held = []
            jobs = [list(job) for job in chunks(rest, per_job)]
            self._unstarted += len(jobs)
            return taken, jobs

    def orphaned(self) -> list[int]:
        """A thread of this process found the queue empty: the events held for a job that
        another process took, for the thread to queue. Nothing is queued then either."""
        with self._lock:
            self._unstarted = 0
            held, self._held = self._held, []
            return held
