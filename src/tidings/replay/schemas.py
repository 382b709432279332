from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel


class ReplayBody(StrictModel):
    from_: datetime = Field(alias="from", description="Replay the events received from then.")
    to: datetime = Field(description="... and before then.")
    limit: int = Field(default=1000, ge=1, le=100_000, description="Events replayed at most.")
    version: int | None = Field(
        default=None, ge=1, description="The version to replay; default: the current one."
    )
    definition: dict[str, Any] | None = Field(
        default=None,
        description="A draft definition, as PUT /automations/{id} takes it, replayed instead "
        "of a version.",
    )
    samples: int = Field(default=10, ge=0, le=50, description="Samples kept of each change.")


class ReplayProgress(BaseModel):
    events_done: int
    # Known once the replay has started.
    events_total: int | None


class ReplayMessage(BaseModel):
    """One message on one channel, caused by one event."""

    event: str
    recipient: str | None
    channel: str
    template: str | None
    subject: str | None


class ChangedMessage(ReplayMessage):
    subject_before: str | None


class DiffCounts(BaseModel):
    added: int
    removed: int
    changed: int
    unchanged: int


class DiffSamples(BaseModel):
    added: list[ReplayMessage]
    removed: list[ReplayMessage]
    changed: list[ChangedMessage]


class ReplayDiff(BaseModel):
    """The messages the replayed definition would send, against those the automation sent."""

    counts: DiffCounts
    samples: DiffSamples


class MessageCounts(BaseModel):
    would: int
    did: int


class ReplayView(BaseModel):
    replay_id: str
    automation_id: str
    definition: str = Field(description='"draft", or "version N".')
    from_: str = Field(alias="from")
    to: str
    limit: int
    status: Literal["queued", "running", "done", "failed", "canceled"]
    progress: ReplayProgress
    truncated: bool = Field(description="More events than `limit` were in the window.")
    attempts: int
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    messages: MessageCounts | None
    diff: ReplayDiff | None = Field(description="Once the replay is done.")


class ReplayList(BaseModel):
    results: list[ReplayView]
    paging: Paging


class ReplayEvent(BaseModel):
    """One replayed event: the runs and messages it would give, and those it gave."""

    event: str
    type: str
    name: str | None
    user_id: str | None
    received_at: str
    change: Literal["added", "removed", "changed", "same", "none"]
    runs: list[dict[str, Any]]
    messages: list[ReplayMessage]
    before: list[ReplayMessage]


class ReplayEventList(BaseModel):
    results: list[ReplayEvent]
    paging: Paging
