from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.engagement.schemas import TemplateTracking
from tidings.kit.schemas import StrictModel

Channel = Literal["email", "sms", "push", "chat", "webhook", "inbox"]


class EmailContent(StrictModel):
    subject: str = ""
    html: str = ""
    text: str = ""


class SmsContent(StrictModel):
    text: str


class PushContent(StrictModel):
    title: str = ""
    body: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class ChatContent(StrictModel):
    text: str


class WebhookContent(StrictModel):
    body: Any


class InboxContent(StrictModel):
    title: str = ""
    body: str = ""
    action_url: str = ""


class NotificationContent(StrictModel):
    email: EmailContent | None = None
    sms: SmsContent | None = None
    push: PushContent | None = None
    chat: ChatContent | None = None
    webhook: WebhookContent | None = None
    inbox: InboxContent | None = None


class Routing(StrictModel):
    method: Literal["single", "all"] = "single"
    channels: list[str | Routing] = Field(
        description="Channel names, provider names, or nested routing objects, in order."
    )


class NotificationBody(StrictModel):
    name: str | None = None
    content: NotificationContent
    routing: Routing | None = None
    strict: bool = Field(
        default=False,
        description="Fail a channel whose content uses a variable the send does not provide.",
    )
    topic_id: str | None = Field(default=None, description="The subscription topic, if any.")
    tracking: TemplateTracking | None = Field(
        default=None,
        description="Open and click tracking of its HTML email; null, or a setting left out: "
        "the environment's default (GET /settings/tracking), off unless turned on.",
    )


TRACKING_FIELD = Field(
    default=None, description="Open and click tracking; null: the environment's default."
)


class NotificationResponse(BaseModel):
    id: str
    name: str
    content: dict[str, Any]
    routing: dict[str, Any] | None
    strict: bool
    topic_id: str | None
    tracking: dict[str, bool] | None = TRACKING_FIELD
    created_at: str
    updated_at: str
    # Courier's template summary, which its SDKs read in GET /notifications.
    created: int = Field(description="When it was created, in epoch milliseconds.")
    updated: int = Field(description="When it was last saved, in epoch milliseconds.")
    creator: str = Field(description="Who saved its first version (see `saved_by`); may be empty.")
    updater: str = Field(description="Who saved its current version; may be empty.")
    state: Literal["PUBLISHED"] = Field(
        default="PUBLISHED", description="Always PUBLISHED: a saved template is live."
    )
    tags: list[str] = Field(default_factory=list, description="Always empty: Tidings has none.")


class NotificationList(BaseModel):
    paging: dict[str, Any]
    results: list[NotificationResponse]


class NotificationVersionResponse(BaseModel):
    """One saved version of a template: the whole template as it was saved, never changed."""

    id: str
    version: int
    name: str
    content: dict[str, Any]
    routing: dict[str, Any] | None
    strict: bool
    topic_id: str | None
    tracking: dict[str, bool] | None = TRACKING_FIELD
    saved_by: str | None = Field(
        description="The Studio admin's email, the API key id, or `cli` (`tidings apply`); "
        "null when not known (a template saved before versions were kept)."
    )
    restored_from: int | None = Field(
        description="The version this one restored, when it was saved by a restore."
    )
    created_at: str


class VersionNode(BaseModel):
    """A version as Courier lists it."""

    version: str = Field(description='"published:vN" for the current version, else "vN".')
    created: int = Field(description="When it was saved, in epoch milliseconds.")
    creator: str = Field(description="Who saved it (`saved_by`); may be empty.")


class NotificationVersionList(BaseModel):
    paging: dict[str, Any]
    results: list[NotificationVersionResponse]
    versions: list[VersionNode] = Field(
        description="The same versions in Courier's shape, which its SDKs read."
    )


class PreviewBody(StrictModel):
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
