from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from tidings.kit.api import from_row
from tidings.kit.pagination import Paging
from tidings.models import AutomationRun, Event, EventStatus


class EventSummary(BaseModel):
    messageId: str
    type: str
    name: str
    userId: str | None
    anonymousId: str | None
    timestamp: str | None
    received_at: str
    status: str
    data: dict[str, Any] | None = Field(
        description="For a track, its `properties`: the data of whatever it triggers."
    )
    unmapped: bool | None = Field(
        default=None,
        description="True when processing found no enabled automation for the event; None "
        "until it is processed.",
    )

    @classmethod
    def of(cls, event: Event, runs: Sequence[AutomationRun] = ()) -> EventSummary:
        data = None
        if event.type in ("track", "page", "screen"):
            properties = event.payload.get("properties")
            data = properties if isinstance(properties, dict) else {}
        return from_row(
            cls,
            event,
            messageId=event.message_id,
            userId=event.user_id,
            anonymousId=event.anonymous_id,
            data=data,
            unmapped=not runs if event.status == EventStatus.PROCESSED else None,
        )


class StartedRun(BaseModel):
    run_id: str
    template_id: str | None
    status: str


class EventDetail(EventSummary):
    payload: dict[str, Any] = Field(description="The event as received.")
    automation_runs: list[StartedRun] = Field(
        default_factory=list, description="The automation runs this event started."
    )
    diagnostics: list[dict[str, Any]]
    profile_diff: list[dict[str, Any]]
    effects: list[str]
    error: str | None
    attempts: int
    processed_at: str | None

    @classmethod
    def of(cls, event: Event, runs: Sequence[AutomationRun] = ()) -> EventDetail:
        summary = EventSummary.of(event, runs)
        return from_row(
            cls,
            event,
            **summary.model_dump(),
            automation_runs=[
                StartedRun(run_id=run.run_id, template_id=run.automation_id, status=run.status)
                for run in runs
            ],
        )


class EventPage(BaseModel):
    paging: Paging
    results: list[EventSummary]


class EventName(BaseModel):
    name: str
    count: int
    first_seen: str
    last_seen: str
    automations: list[str] = Field(
        description="Enabled automations this name triggers now (identify, group, track/…)."
    )
    unmapped: bool = Field(description="True when no enabled automation has this trigger.")


class EventNameList(BaseModel):
    results: list[EventName]
