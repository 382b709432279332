from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tidings.kit.schemas import StrictModel

DEFAULT_TOKEN_SECONDS = 24 * 60 * 60
MAX_TOKEN_SECONDS = 30 * 24 * 60 * 60


class TokenBody(StrictModel):
    user_id: str = Field(
        min_length=1, max_length=300, description="The user whose inbox the token opens."
    )
    expires_in_seconds: int = Field(
        default=DEFAULT_TOKEN_SECONDS,
        ge=1,
        le=MAX_TOKEN_SECONDS,
        description="How long the token is valid: 24 hours unless given, at most 30 days.",
    )


class TokenResponse(BaseModel):
    token: str
    expires_at: str


class InboxMessageView(BaseModel):
    """Courier's Inbox message fields; `read` and `archived` are ISO times or null."""

    messageId: str
    title: str
    body: str
    action_url: str | None
    data: dict[str, Any]
    created: str
    read: str | None
    archived: str | None


class InboxMessagePage(BaseModel):
    paging: dict[str, Any]
    results: list[InboxMessageView]


class UnreadCount(BaseModel):
    count: int


class ReadAllResponse(BaseModel):
    updated: int
