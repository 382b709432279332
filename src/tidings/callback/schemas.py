from __future__ import annotations

from pydantic import BaseModel, Field


class CallbackResult(BaseModel):
    """What Tidings did with the events of one callback request."""

    received: int = Field(description="Events in the request.")
    applied: int = Field(description="Events that moved a delivery to delivered or failed.")
    duplicates: int = Field(description="Repeats of events already applied: nothing changed.")
    recorded: int = Field(description="Intermediate statuses written to the message history.")
    ignored: int = Field(description="Event types Tidings does not track (opens, clicks, …).")
    unknown: int = Field(description="Events naming no message or delivery Tidings knows.")
