"""Analytics: per template, automation and channel, what was sent, delivered, bounced,
complained, opened, clicked and unsubscribed over a period, as a time series and a funnel
(drawn by studio/charts.py) with their figures in tables. Through the same service as
`GET /analytics/messages`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from starlette.responses import Response

from tidings.analytics import service
from tidings.kit.time import utcnow
from tidings.models import Metric
from tidings.provider.base import CHANNELS
from tidings.studio import charts
from tidings.studio.dependencies import PREFIX, Page
from tidings.studio.listing import ListQuery
from tidings.studio.templating import render

router = APIRouter()

PATH = f"{PREFIX}/analytics"
# The periods offered: (label, interval, buckets).
PERIODS: dict[str, tuple[str, service.Interval, int]] = {
    "24h": ("Last 24 hours, by hour", "hour", 24),
    "7d": ("Last 7 days, by day", "day", 7),
    "30d": ("Last 30 days, by day", "day", 30),
    "90d": ("Last 90 days, by day", "day", 90),
}
SERIES = (Metric.SENT, Metric.DELIVERED, Metric.OPENED, Metric.CLICKED, Metric.BOUNCED)


@router.get("/analytics")
def analytics(page: Page) -> Response:
    query = ListQuery(page.request, PATH, 1)
    period_key = query.choice("period", PERIODS, "Period") or "30d"
    channel = query.choice("channel", CHANNELS, "Channel")
    template = query.text("template")
    automation = query.text("automation")
    _, interval, buckets = PERIODS[period_key]
    now = utcnow()
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    end = service.period(service.MetricsQuery(interval=interval), now)[1]
    metrics_query = service.MetricsQuery(
        template=template,
        automation=automation,
        channel=channel,
        start=(end - step * buckets).isoformat(),
        end=end.isoformat(),
        interval=interval,
    )
    environment_id = page.scope.environment_id
    with page.database.read() as session:
        found = service.report(session, environment_id, metrics_query, now)
        templates, automations = service.choices(session, environment_id, found.start, found.end)
    label_format = "%H:%M" if interval == "hour" else "%b %d"
    series = charts.time_series(
        [bucket.start for bucket in found.buckets],
        {metric: [bucket.counts[metric] for bucket in found.buckets] for metric in SERIES},
        label_format,
    )
    funnel = charts.funnel([(stage.stage, stage.count) for stage in found.funnel])
    return render(
        page.request,
        "analytics.html",
        status_code=400 if query.errors else 200,
        section="analytics",
        report=found,
        series=series,
        funnel=funnel,
        metrics=Metric.ALL,
        periods=PERIODS,
        period=period_key,
        channels=CHANNELS,
        templates=sorted({*templates, *([template] if template else [])}),
        automations=sorted({*automations, *([automation] if automation else [])}),
        filters=query.values,
        errors=query.errors,
        row_format="%Y-%m-%d %H:%M" if interval == "hour" else "%Y-%m-%d",
    )
