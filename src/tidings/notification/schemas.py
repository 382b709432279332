from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["email", "sms", "push", "chat", "webhook", "inbox"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailContent(_Strict):
    subject: str = ""
    html: str = ""
    text: str = ""


class SmsContent(_Strict):
    text: str


class PushContent(_Strict):
    title: str = ""
    body: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class ChatContent(_Strict):
    text: str


class WebhookContent(_Strict):
    body: Any


class InboxContent(_Strict):
    title: str = ""
    body: str = ""
    action_url: str = ""


class NotificationContent(_Strict):
    email: EmailContent | None = None
    sms: SmsContent | None = None
    push: PushContent | None = None
    chat: ChatContent | None = None
    webhook: WebhookContent | None = None
    inbox: InboxContent | None = None


class Routing(_Strict):
    method: Literal["single", "all"] = "single"
    channels: list[str | Routing] = Field(
        description="Channel names, provider names, or nested routing objects, in order."
    )


class NotificationBody(_Strict):
    name: str | None = None
    content: NotificationContent
    routing: Routing | None = None
    strict: bool = Field(
        default=False,
        description="Fail a channel whose content uses a variable the send does not provide.",
    )
    topic_id: str | None = Field(default=None, description="The subscription topic, if any.")


class NotificationResponse(BaseModel):
    id: str
    name: str
    content: dict[str, Any]
    routing: dict[str, Any] | None
    strict: bool
    topic_id: str | None
    created_at: str
    updated_at: str


class NotificationList(BaseModel):
    paging: dict[str, Any]
    results: list[NotificationResponse]


class PreviewBody(_Strict):
    data: dict[str, Any] = Field(default_factory=dict)
    profile: dict[str, Any] = Field(default_factory=dict)
    event_message_id: str | None = Field(
        default=None,
        description="Render with a received Segment event: its properties or traits as data.",
    )


class DroppedLinkOut(BaseModel):
    channel: str
    field: str
    url: str


class PreviewResponse(BaseModel):
    channels: dict[str, dict[str, Any]]
    errors: dict[str, str]
    dropped_links: list[DroppedLinkOut] = Field(
        default_factory=list,
        description="URLs that rendered with a scheme other than http, https or mailto, and "
        "were emptied.",
    )
