"""Wire shapes of the suppression API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel

Channel = Literal["email", "sms", "push", "chat", "webhook", "inbox"]
Reason = Literal["HARD_BOUNCE", "COMPLAINT", "SOFT_BOUNCES", "UNSUBSCRIBED", "MANUAL"]


class SuppressionIn(StrictModel):
    """One address to suppress."""

    channel: Channel
    address: str = Field(
        min_length=1,
        max_length=500,
        description="The channel's address: an email address, a phone number in E.164, … "
        "Stored normalized (an email address lower-cased).",
    )
    topic_id: str | None = Field(
        default=None,
        max_length=200,
        description="Suppress it for this subscription topic's messages only; null (the "
        "default): for every message.",
    )
    reason: Reason = "MANUAL"
    detail: str | None = Field(default=None, max_length=1000, description="A note.")


class SuppressionsBody(StrictModel):
    """Body of `POST /suppressions` for several addresses at once."""

    suppressions: list[SuppressionIn] = Field(min_length=1, max_length=1000)


class SuppressionView(BaseModel):
    channel: str
    address: str
    topic_id: str | None = Field(description="null: every message; else only this topic's.")
    reason: str = Field(
        description="HARD_BOUNCE, COMPLAINT, SOFT_BOUNCES, UNSUBSCRIBED or MANUAL: a message "
        "kept from the address ends SUPPRESSED with it."
    )
    source: str = Field(
        description="What put it there: a provider's name (its bounce or complaint report), "
        "unsubscribe, api, studio or import."
    )
    detail: str | None
    user_id: str | None = Field(description="The user whose one-click unsubscribe made it.")
    created_at: str


class SuppressionPage(BaseModel):
    items: list[SuppressionView]
    paging: Paging


class AddedSuppressions(BaseModel):
    added: int = Field(description="How many entries were new; the others were there already.")
    items: list[SuppressionView]


class ImportResult(BaseModel):
    rows: int = Field(description="The distinct entries the file held.")
    added: int = Field(description="How many were new.")
    existing: int = Field(description="How many were on the list already (left as they were).")
