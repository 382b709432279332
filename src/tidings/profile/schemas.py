from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.kit.schemas import StrictModel


class ProfileBody(StrictModel):
    """Body of POST (merge) and PUT (replace): Courier's `{"profile": {...}}`."""

    profile: dict[str, Any] = Field(description="Profile fields, e.g. email and phone_number.")


class PatchOperation(BaseModel):
    model_config = ConfigDict(extra="allow")
    op: Literal["add", "remove", "replace", "copy", "move", "test"]
    path: str


class PatchBody(StrictModel):
    patch: list[PatchOperation] = Field(description="RFC 6902 JSON Patch operations.")


class ProfileResponse(BaseModel):
    profile: dict[str, Any]


class StatusResponse(BaseModel):
    status: Literal["SUCCESS"] = "SUCCESS"
