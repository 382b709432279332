"""Wire shapes of the outbound webhooks API (`/webhooks/...`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel
from tidings.webhook_out.events import EVENT_TYPES
from tidings.webhook_out.service import MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH

EVENT_TYPE_LIST = ", ".join(EVENT_TYPES)
EventType = Literal[
    "message.sent",
    "message.delivered",
    "message.opened",
    "message.clicked",
    "message.bounced",
    "message.complained",
    "run.failed",
    "event.unmapped",
]
DeliveryStatus = Literal["pending", "sending", "succeeded", "failed"]


class EndpointBody(StrictModel):
    """Body of `POST /webhooks/endpoints`."""

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="The http or https URL to POST to. An internal address is refused unless "
        "the operator allows it (TIDINGS_OUTBOUND_ALLOW).",
    )
    event_types: list[EventType] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=f"Any of: {EVENT_TYPE_LIST}."
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool = True


class EndpointPatch(StrictModel):
    """Body of `PATCH /webhooks/endpoints/{endpoint_id}`: the fields to change."""

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=len(EVENT_TYPES)
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool | None = None


class EndpointView(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    secret_hint: str = Field(description="The secret's last four characters.")
    created_at: str | None
    updated_at: str | None


class EndpointWithSecret(EndpointView):
    """The answer to creating an endpoint or rotating its secret: the secret, this once."""

    secret: str = Field(
        description="`whsec_` and the base64 of the HMAC key (Standard Webhooks). Shown once."
    )


class EndpointList(BaseModel):
    results: list[EndpointView]


class DeliveryResponse(BaseModel):
    status: int | None = Field(description="The HTTP status the endpoint answered.")
    body: str | None = Field(description="The first 1 KB of its answer.")
    latency_ms: int | None
    error: str | None = Field(description="Why the attempt failed, if it did.")


class DeliveryView(BaseModel):
    id: int
    endpoint_id: str
    event_id: str = Field(description="The `webhook-id` header: the same on every retry.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    response: DeliveryResponse
    replay_of: int | None
    created_at: str | None
    updated_at: str | None
    payload: dict[str, Any] | None = Field(
        default=None, description="The body sent (on a single delivery's read and a replay)."
    )


class DeliveryPage(BaseModel):
    results: list[DeliveryView]
    paging: Paging
