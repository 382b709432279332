"""What an open or click does: it is applied as a vendor's report is (`service.apply_report`,
the one implementation of the feedback ladder): an OPENED or CLICKED history entry with the
time, the user agent, the URL of a click and `machine`; a person's moves the message up the
ladder and sets `opened_at` or `clicked_at` when it is the first, a machine's
(`engagement.machine`) only goes into the history. Which sends are tracked, and how, is
tidings.engagement's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from tidings.callback.service import apply_report
from tidings.db import Outbox
from tidings.engagement.machine import machine_reason
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import MessageStatus
from tidings.provider.base import ReportOutcome, StatusReport

EMAIL = "email"
# Opens and clicks kept per message: past this many, the pixel and links still answer, and
# nothing more is written (a link pasted somewhere public must not grow a history forever).
MAX_TRACKED_EVENTS = 100
USER_AGENT_LIMIT = 500
SOURCE = "tidings_tracking"


@dataclass(frozen=True, slots=True)
class Hit:
    """One request for an open pixel (`url` None) or a tracked link."""

    message_id: str
    user_agent: str
    client_ip: str | None
    url: str | None = None


Recorded = Literal["applied", "recorded", "duplicates", "unknown", "full"]


def record_hit(session: Session, outbox: Outbox, hit: Hit, machine_seconds: float) -> Recorded:
    """Apply an open or click to the message's email delivery: "unknown" when there is no
    such message (erased, say), "full" past `MAX_TRACKED_EVENTS`; otherwise what
    `apply_report` did (its outbound webhook events go to `outbox`)."""
    repository = MessageRepository(session)
    found = repository.channel_delivery(hit.message_id, EMAIL)
    if found is None:
        return "unknown"
    message, delivery = found
    engagement = (MessageStatus.OPENED, MessageStatus.CLICKED)
    if repository.count_history(message, engagement) >= MAX_TRACKED_EVENTS:
        return "full"
    user_agent = hit.user_agent[:USER_AGENT_LIMIT]
    reason = machine_reason(user_agent, hit.client_ip, message.sent_at, utcnow(), machine_seconds)
    facts = {"source": SOURCE, "user_agent": user_agent}
    if hit.url is not None:
        facts["url"] = hit.url
    if reason is not None:
        facts["machine_reason"] = reason
    report = StatusReport(
        outcome=ReportOutcome.OPENED if hit.url is None else ReportOutcome.CLICKED,
        detail="open pixel loaded" if hit.url is None else "tracked link followed",
        event_id=f"tidings-{uuid.uuid4()}",
        facts=facts,
        machine=reason is not None,
    )
    return apply_report(session, outbox, delivery.id, report)
