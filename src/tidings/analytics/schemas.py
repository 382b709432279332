"""The wire shapes of `GET /analytics/messages`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricCounts(BaseModel):
    sent: int
    delivered: int
    bounced: int
    complained: int
    opened: int = Field(description="Messages opened by a person at least once (unique).")
    clicked: int = Field(description="Messages with a link followed by a person (unique).")
    unsubscribed: int


class MetricBucket(MetricCounts):
    start: str = Field(description="The bucket's first moment (UTC, ISO 8601).")


class FunnelStageView(BaseModel):
    stage: str
    count: int
    rate: float | None = Field(description="Of sent; null when nothing was sent.")
    conversion: float | None = Field(
        description="Of the stage before; null for sent, or when the stage before is 0."
    )


class MetricFilters(BaseModel):
    template: str | None
    automation: str | None
    channel: str | None


class MessageMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    interval: str
    from_: str = Field(alias="from", description="The period's start (UTC, inclusive).")
    to: str = Field(description="The period's end (UTC, exclusive).")
    filters: MetricFilters
    totals: MetricCounts
    results: list[MetricBucket]
    funnel: list[FunnelStageView]
