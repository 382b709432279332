"""`GET /analytics/messages`: per template, automation and channel, what was sent,
delivered, bounced, complained, opened, clicked and unsubscribed over a period. A secret API
key's; the key's environment's. (`/metrics` is left to the Prometheus endpoint.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tidings.analytics import service
from tidings.analytics.schemas import (
    FunnelStageView,
    MessageMetrics,
    MetricBucket,
    MetricCounts,
    MetricFilters,
)
from tidings.dependencies import Caller, ReadSession
from tidings.kit.time import isoformat
from tidings.provider.base import CHANNELS
from tidings.routing import ApiRoute

router = APIRouter(tags=["analytics"], route_class=ApiRoute)

CHANNEL_PATTERN = "^(" + "|".join(CHANNELS) + ")$"


def view(found: service.MetricsReport) -> MessageMetrics:
    query = found.query
    return MessageMetrics(
        interval=query.interval,
        from_=isoformat(found.start) or "",
        to=isoformat(found.end) or "",
        filters=MetricFilters(
            template=query.template, automation=query.automation, channel=query.channel
        ),
        totals=MetricCounts(**found.totals),
        results=[
            MetricBucket(start=isoformat(bucket.start) or "", **bucket.counts)
            for bucket in found.buckets
        ],
        funnel=[
            FunnelStageView(
                stage=stage.stage,
                count=stage.count,
                rate=stage.rate,
                conversion=stage.conversion,
            )
            for stage in found.funnel
        ],
    )


@router.get("/analytics/messages", response_model=MessageMetrics, response_model_by_alias=True)
def message_metrics(
    caller: Caller,
    session: ReadSession,
    template: Annotated[
        str | None, Query(max_length=200, description="One template's (notification id).")
    ] = None,
    automation: Annotated[
        str | None, Query(max_length=200, description="One automation's messages.")
    ] = None,
    channel: Annotated[str | None, Query(pattern=CHANNEL_PATTERN)] = None,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=40,
            description="ISO 8601 (UTC without an offset); rounded down to the interval.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(max_length=40, description="ISO 8601, exclusive; rounded up to the interval."),
    ] = None,
    interval: Annotated[service.Interval, Query()] = "day",
) -> MessageMetrics:
    """A time series (a bucket per hour or day, UTC), the totals and the funnel sent →
    delivered → opened → clicked of the period: by default the last 30 days by day, or the
    last 24 hours by hour; at most 31 days by hour, 400 by day. Read from the hourly rollup
    (docs/deliverability.md, "Metrics")."""
    query = service.MetricsQuery(
        template=template,
        automation=automation,
        channel=channel,
        start=from_,
        end=to,
        interval=interval,
    )
    return view(service.report(session, caller.environment_id, query))
