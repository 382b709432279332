from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tidings.notification.schemas import Routing


class Delay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: int | None = Field(default=None, ge=0, description="Milliseconds to wait.")
    until: str | None = Field(
        default=None,
        description="ISO-8601 time to send at, or a delivery window in opening-hours form "
        '("Mo-Fr 09:00-18:00"): the message waits for its next opening.',
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone the window is read in; else the recipient's profile "
        "zoneinfo or timezone, else UTC.",
    )
    window: dict[str, Any] | str | None = Field(
        default=None,
        description='A send window, as on a send step: {"days", "hours": {"start", "end"}, '
        '"timezone", "fallback_timezone"}; after the duration or until, if given.',
    )


class Expiry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: str | int | None = Field(default=None, description="ISO time or epoch ms.")
    expires_in: str | int | None = Field(
        default=None, description="Milliseconds, or an ISO-8601 duration such as PT1H."
    )


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    event: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=9)
    trace_id: str | None = None
    utm: dict[str, str] | None = None


class MessageSpec(BaseModel):
    """Courier's `message`. Unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    to: dict[str, Any] | list[dict[str, Any]]
    template: str | None = None
    content: dict[str, Any] | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    routing: Routing | None = None
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    delay: Delay | None = None
    expiry: Expiry | None = None
    metadata: Metadata = Field(default_factory=Metadata)


class SendBody(BaseModel):
    message: MessageSpec


class SendResponse(BaseModel):
    requestId: str


class ResendResponse(BaseModel):
    requestId: str = Field(description="The new message's request (its id, as for one /send).")
    messageId: str = Field(description="The new message.")
    resendOf: str = Field(description="The message resent.")


class ProviderDetail(BaseModel):
    channel: dict[str, Any]
    provider: str
    status: str
    reference: dict[str, Any]
    error: str | None


class MessageView(BaseModel):
    id: str
    requestId: str
    status: str = Field(
        description="Courier's status: ENQUEUED, DELAYED, ROUTED, SENT, DELIVERED, OPENED, "
        "CLICKED, UNDELIVERABLE, UNROUTABLE, UNMAPPED, CANCELED or FILTERED."
    )
    tidings_status: str = Field(
        description="Tidings' own status, finer than Courier's where Courier has none of its "
        "own: BOUNCED (`status` UNDELIVERABLE, `reason` BOUNCED), COMPLAINED (`status` "
        "DELIVERED) and SUPPRESSED (`status` FILTERED: the suppression list kept it back); "
        "otherwise the same as `status`."
    )
    reason: str | None = Field(
        description="Courier's reason for the status: BOUNCED, FAILED, FILTERED, NO_CHANNELS, "
        "NO_PROVIDERS, OPT_IN_REQUIRED, PROVIDER_ERROR, UNPUBLISHED or UNSUBSCRIBED."
    )
    tidings_reason: str | None = Field(
        description="Tidings' own reason, finer than Courier's where Courier has none of its "
        "own: RENDER_FAILED, RENDER_LIMIT and EXPIRED (`reason` FAILED), UNKNOWN_OUTCOME "
        "(`reason` null), and a SUPPRESSED message's HARD_BOUNCE, COMPLAINT, SOFT_BOUNCES "
        "and MANUAL (`reason` FILTERED); otherwise the same as `reason`."
    )
    error: str | None
    recipient: str = Field(
        description="The user id; for a send to an address alone, that email or phone number."
    )
    to: dict[str, Any]
    notification: str = Field(description="The template the send named; empty for content.")
    event: str = Field(
        description="What started the message: the send's `metadata.event`, else the run's "
        "source for an automation's send (e.g. `segment/track/Order Shipped`), else the "
        "template, else `api/send`."
    )
    tags: list[str]
    trace_id: str | None
    enqueued: int
    sent: int | None
    delivered: int | None
    opened: int | None = Field(description="When the provider first reported an open.")
    clicked: int | None = Field(description="When the provider first reported a click.")
    canceledAt: int | None
    send_at: str | None
    providers: list[ProviderDetail]


class MessagePage(BaseModel):
    paging: dict[str, Any]
    results: list[MessageView]


class HistoryList(BaseModel):
    results: list[dict[str, Any]]


class OutputList(BaseModel):
    results: list[dict[str, Any]]
