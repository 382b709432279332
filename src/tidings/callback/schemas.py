from __future__ import annotations

from pydantic import BaseModel, Field


class CallbackResult(BaseModel):
    """What Tidings did with the events of one callback request."""

    received: int = Field(description="Events in the request.")
    applied: int = Field(description="Events that moved a delivery up (delivered, opened, …).")
    duplicates: int = Field(description="Repeats of events already applied: nothing changed.")
    recorded: int = Field(
        description="Events written to the message history that moved nothing: intermediate "
        "statuses, further opens and clicks, reports that came after a stronger one."
    )
    ignored: int = Field(description="Event types Tidings does not track.")
    unknown: int = Field(description="Events naming no message or delivery Tidings knows.")
    subscribed: int = Field(
        default=0,
        description="Subscriptions confirmed (an Amazon SNS subscription confirmation).",
    )
