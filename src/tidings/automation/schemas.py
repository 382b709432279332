"""Wire shapes of automation templates.

The request body is validated by `service.validate_definition`, not by pydantic, so every
error names its exact path (`steps[2].duration`) and says how to fix it. `AutomationBody` is
here to document the shape in the API reference.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Trigger(BaseModel):
    source: Literal["segment", "inbound"]
    event: str = Field(
        description='segment: "identify", "group" or "track/<event name>"; inbound: any name.'
    )


class AutomationBody(BaseModel):
    """An automation definition, as PUT /automations/{id} and `tidings apply` take it."""

    name: str | None = Field(default=None, description="Defaults to the id.")
    enabled: bool = True
    triggers: list[Trigger] = Field(default_factory=list)
    cancelation_token: str | None = Field(
        default=None, description="A Liquid expression, e.g. `{{ data.cart_id }}`."
    )
    steps: list[dict[str, Any]] = Field(
        description="Steps with an `action`: send, send-list, delay, cancel, update-profile, "
        "fetch-data or invoke; each may have `if` and `ref`."
    )


class AutomationResponse(BaseModel):
    id: str
    name: str
    enabled: bool
    version: int
    triggers: list[dict[str, Any]]
    cancelation_token: str | None
    steps: list[dict[str, Any]]
    created_at: str
    updated_at: str


class AutomationList(BaseModel):
    paging: dict[str, Any]
    results: list[AutomationResponse]


class VersionResponse(BaseModel):
    id: str
    version: int
    name: str
    enabled: bool
    triggers: list[dict[str, Any]]
    cancelation_token: str | None
    steps: list[dict[str, Any]]
    created_at: str


class VersionList(BaseModel):
    paging: dict[str, Any]
    results: list[VersionResponse]
