"""The sweep's re-drive of delivery attempts, for both delivery tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tidings.db import Outbox
from tidings.kit.time import utcnow
from tidings.worker.context import WorkerContext
from tidings.worker.repository import AttemptTable


def redrive_attempts(
    context: WorkerContext,
    attempts: AttemptTable,
    enqueue: Callable[[Outbox, int], None],
    due_before: datetime,
    unclaimed_since: datetime,
    limit: int,
) -> int:
    """Claim, for a sweep, deliveries of `attempts`' table that a dead process left
    `sending` or whose due retry lost its job, and `enqueue` each in the outbox, to be
    attempted again once the claim commits; returns how many."""
    with context.database.write() as (session, outbox):
        claimed = attempts.claim_redrivable(
            session,
            due_before=due_before,
            unclaimed_since=unclaimed_since,
            now=utcnow(),
            settings=context.settings,
            limit=limit,
        )
        for delivery_id in claimed:
            enqueue(outbox, delivery_id)
        return len(claimed)
