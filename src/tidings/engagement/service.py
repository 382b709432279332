"""Open and click tracking rules: which sends are tracked, and what an open or click does.

A template's `tracking` (`{"opens", "clicks"}`, each true, false or left to the default)
wins over its environment's default, which is off for both. An email is instrumented when it
is rendered (`message.pipeline` calls `instrument_email`), so the message's output holds the
HTML as it was sent.

An open or click is applied as a vendor's report is (`callback.service.apply_report`, the
one implementation of the feedback ladder): an OPENED or CLICKED history entry with the
time, the user agent, the URL of a click and `machine`; a person's moves the message up the
ladder and sets `opened_at` or `clicked_at` when it is the first, a machine's
(`engagement.machine`) only goes into the history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from tidings.callback.service import apply_report
from tidings.db import Outbox
from tidings.engagement.links import Instrumented, instrument
from tidings.engagement.machine import machine_reason
from tidings.engagement.schemas import EnvironmentTracking
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import MessageStatus
from tidings.provider.base import ReportOutcome, StatusReport
from tidings.workspace.repository import WorkspaceRepository

EMAIL = "email"
# Opens and clicks kept per message: past this many, the pixel and links still answer, and
# nothing more is written (a link pasted somewhere public must not grow a history forever).
MAX_TRACKED_EVENTS = 100
USER_AGENT_LIMIT = 500
SOURCE = "tidings_tracking"


@dataclass(frozen=True, slots=True)
class Tracking:
    opens: bool = False
    clicks: bool = False

    @property
    def any(self) -> bool:
        return self.opens or self.clicks


def environment_tracking(session: Session, environment_id: str) -> EnvironmentTracking:
    environment = WorkspaceRepository(session).environment(environment_id)
    stored = environment.tracking if environment is not None else None
    return EnvironmentTracking.model_validate(stored or {})


def set_environment_tracking(
    session: Session, environment_id: str, settings: EnvironmentTracking
) -> EnvironmentTracking:
    environment = WorkspaceRepository(session).environment(environment_id)
    assert environment is not None  # the caller's own environment
    environment.tracking = settings.model_dump()
    return settings


def resolve(template: dict[str, Any] | None, session: Session, environment_id: str) -> Tracking:
    """What a send of `template`'s tracking tracks: each setting the template leaves out is
    the environment's; the environment is read only when one is left out."""
    template = template or {}
    opens, clicks = template.get("opens"), template.get("clicks")
    if opens is None or clicks is None:
        default = environment_tracking(session, environment_id)
        opens = default.opens if opens is None else opens
        clicks = default.clicks if clicks is None else clicks
    return Tracking(opens=bool(opens), clicks=bool(clicks))


def instrument_email(
    session: Session,
    rendered: dict[str, Any],
    template_tracking: dict[str, Any] | None,
    *,
    environment_id: str,
    key: bytes,
    base_url: str,
    message_id: str,
) -> Instrumented | None:
    """Track the rendered email's HTML in place (`rendered["html"]`) as the template's
    tracking and the environment's default say; None when there is nothing to do (no HTML,
    no signing key, tracking off). The environment is read only for an HTML email whose
    template leaves a setting to it."""
    source = rendered.get("html")
    if not (key and isinstance(source, str) and source.strip()):
        return None
    tracking = resolve(template_tracking, session, environment_id)
    if not tracking.any:
        return None
    done = instrument(
        source,
        key=key,
        base_url=base_url,
        message_id=message_id,
        opens=tracking.opens,
        clicks=tracking.clicks,
    )
    rendered["html"] = done.html
    return done


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
