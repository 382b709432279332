from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel

DefaultStatus = Literal["OPTED_IN", "OPTED_OUT", "REQUIRED"]
PreferenceStatus = Literal["OPTED_IN", "OPTED_OUT", "REQUIRED"]


class TopicBody(StrictModel):
    """Body of `PUT /preferences/topics/{topic_id}`: creates the topic or replaces it."""

    name: str = Field(min_length=1, max_length=300, description="Shown to recipients.")
    default_status: DefaultStatus = Field(
        description="What applies to users who made no choice. REQUIRED cannot be opted out of."
    )


class TopicResponse(BaseModel):
    topic_id: str
    name: str
    default_status: str
    created_at: str
    updated_at: str


class TopicList(BaseModel):
    items: list[TopicResponse]
    paging: Paging


class TopicPreferenceBody(StrictModel):
    status: PreferenceStatus = Field(description="OPTED_IN or OPTED_OUT.")
    has_custom_routing: bool = Field(
        default=False, description="Route this topic to `custom_routing` instead of the default."
    )
    custom_routing: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Channels: email, sms, push, chat (or direct_message), webhook, inbox.",
    )


class PreferenceBody(StrictModel):
    """Body of `PUT /users/{user_id}/preferences/{topic_id}`, as in Courier."""

    topic: TopicPreferenceBody


class TopicPreference(BaseModel):
    """One topic as one user sees it; `status` is the default when the user made no choice."""

    topic_id: str
    topic_name: str
    status: str
    default_status: str
    has_custom_routing: bool
    custom_routing: list[str]


class PreferenceList(BaseModel):
    items: list[TopicPreference]
    paging: Paging


class TopicPreferenceResponse(BaseModel):
    topic: TopicPreference


class MessageResponse(BaseModel):
    message: Literal["success"] = "success"
