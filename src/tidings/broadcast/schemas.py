"""Wire shapes of the Broadcasts API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel


class BroadcastTarget(StrictModel):
    """Exactly one of `audience_id`, `list_id` or `tenant_id`: every member is sent to."""

    audience_id: str | None = Field(default=None, min_length=1, max_length=300)
    list_id: str | None = Field(default=None, min_length=1, max_length=300)
    tenant_id: str | None = Field(default=None, min_length=1, max_length=300)


class BroadcastBody(StrictModel):
    """Body of `POST /broadcasts`."""

    broadcast_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=48,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Your id for the broadcast; a repeat of the same body with it answers the "
        "broadcast already made. Generated when left out.",
    )
    template: str = Field(min_length=1, max_length=300, description="A notification id.")
    to: BroadcastTarget
    data: dict[str, Any] = Field(default_factory=dict)
    send_at: str | int | None = Field(
        default=None, description="ISO-8601 time or epoch milliseconds; now when left out."
    )
    window: dict[str, Any] | str | None = Field(
        default=None,
        description='A send window, as on a send step: {"days", "hours": {"start", "end"}, '
        '"timezone", "fallback_timezone"}; each recipient\'s message waits for its opening '
        "in the recipient's zone.",
    )


class BroadcastCounts(BaseModel):
    targeted: int = Field(description="Messages made so far (recipients reached).")
    sent: int = Field(description="Accepted by a provider (SENT and every status after it).")
    suppressed: int = Field(
        description="Stopped by the recipient's preferences (FILTERED) or by the suppression "
        "list (SUPPRESSED)."
    )
    failed: int = Field(description="UNDELIVERABLE, UNROUTABLE or UNMAPPED.")
    canceled: int = Field(description="Canceled with the broadcast before they were sent.")
    pending: int = Field(description="Not sent yet (enqueued, delayed by a window, routed).")


class BroadcastView(BaseModel):
    id: str
    template: str
    to: dict[str, str]
    data: dict[str, Any]
    window: dict[str, Any] | str | None
    status: Literal["scheduled", "running", "paused", "canceled", "completed"]
    send_at: str | None
    counts: BroadcastCounts
    cursor: int = Field(description="The last subscription, stay or membership id reached.")
    next_chunk_at: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class BroadcastPage(BaseModel):
    items: list[BroadcastView]
    paging: Paging
