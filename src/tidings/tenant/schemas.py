from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class TenantResponse(BaseModel):
    id: str
    name: str | None
    properties: dict[str, Any]
    created_at: str
    updated_at: str


class Membership(BaseModel):
    type: Literal["user"] = "user"
    user_id: str
    tenant_id: str


class MembershipList(BaseModel):
    """Courier's list shape."""

    type: Literal["list"] = "list"
    url: str = Field(description="The path that produced this page.")
    next_url: str | None = Field(description="The path of the next page; null on the last.")
    items: list[Membership]
    has_more: bool
    cursor: str | None
