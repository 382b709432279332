"""Wire shapes of the Audiences API: Courier's (`id`, `name`, `filter`, `paging`), plus
Tidings' `condition`, version, member count and scan progress."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel


class AudienceBody(StrictModel):
    """Body of `PUT /audiences/{audience_id}`: a name and exactly one of `condition` or
    Courier's `filter`."""

    name: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=2000)
    condition: dict[str, Any] | None = Field(
        default=None,
        description="Tidings' condition tree (docs/audiences.md), e.g. "
        '{"all": [{"trait": "plan", "equals": "free"}, {"event": "Viewed Pricing", '
        '"at_least": 2, "within": "7 days"}]}',
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Courier's filter: "
        '{"operator": "AND", "filters": [{"operator": "EQ", "path": "plan", "value": "pro"}]}',
    )
    operator: Literal["AND", "OR"] | None = Field(
        default=None, description="Courier's alias of `filter.operator`."
    )


class ScanView(BaseModel):
    """The evaluation of every profile that follows a change of the condition."""

    state: Literal["scanning", "ready"]
    version: int
    scanned: int
    total: int
    started_at: str | None
    finished_at: str | None


class AudienceView(BaseModel):
    id: str
    name: str
    description: str
    created_at: str
    updated_at: str
    filter: dict[str, Any] | None = None
    operator: Literal["AND", "OR"] | None = None
    condition: dict[str, Any]
    version: int
    member_count: int
    scan: ScanView


class AudienceSaved(BaseModel):
    """Courier's answer to `PUT /audiences/{id}`."""

    audience: AudienceView


class AudiencePage(BaseModel):
    items: list[AudienceView]
    paging: Paging


class MemberView(BaseModel):
    """A current member, in Courier's shape."""

    added_at: str
    audience_id: str
    audience_version: int
    member_id: str
    reason: str


class MemberPage(BaseModel):
    items: list[MemberView]
    paging: Paging


class StayView(BaseModel):
    """One stay of a user in the audience: when it entered, and when it left (null while it
    is a member)."""

    member_id: str
    audience_version: int
    entered_at: str
    left_at: str | None


class StayPage(BaseModel):
    items: list[StayView]
    paging: Paging
