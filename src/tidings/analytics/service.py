"""Message metrics: what the rollup counts (the transitions call `MetricRepository.count`
or `count_delivery_on_cursor` themselves, a one-click unsubscribe unsubscribe.service), and
the report of a period: a time series, totals and the funnel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from tidings.analytics.repository import MetricRepository
from tidings.errors import BadRequest
from tidings.kit.time import utcnow
from tidings.models import Metric

Interval = Literal["hour", "day"]
_STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The longest period of each interval, in buckets: a month of hours, a year and a month of days.
MAX_BUCKETS: dict[str, int] = {"hour": 24 * 31, "day": 400}
# The period when none is given: the last day by hour, the last 30 days by day.
DEFAULT_BUCKETS: dict[str, int] = {"hour": 24, "day": 30}
FUNNEL = (Metric.SENT, Metric.DELIVERED, Metric.OPENED, Metric.CLICKED)


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """A report's filters and period, as given (None: not given)."""

    template: str | None = None
    automation: str | None = None
    channel: str | None = None
    start: str | None = None
    end: str | None = None
    interval: Interval = "day"


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class FunnelStage:
    stage: str
    count: int
    # Of the funnel's first stage (sent), and of the stage before; None when that is 0.
    rate: float | None
    conversion: float | None


@dataclass(frozen=True, slots=True)
class MetricsReport:
    query: MetricsQuery
    start: datetime
    end: datetime
    buckets: list[Bucket]
    totals: dict[str, int]
    funnel: list[FunnelStage]


def _moment(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"{field!r} is not a date or time: give ISO 8601, such as 2026-12-01 or "
            "2026-12-01T09:00:00Z (UTC when no offset is given).",
            field=field,
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _floor(at: datetime, interval: str) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if interval == "day" else at


def _ceil(at: datetime, interval: str) -> datetime:
    floor = _floor(at, interval)
    return floor if floor == at else floor + _STEP[interval]


def period(query: MetricsQuery, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the report in whole buckets (UTC): `from` rounded down, `to` up;
    without `to`, up to the end of the current bucket; without `from`, DEFAULT_BUCKETS
    before the end."""
    try:
        return _period(query, now)
    except OverflowError:
        raise BadRequest(
            "The period runs past the dates Tidings can count: give years from 1 to 9999.",
            field="to" if query.end else "from",
        ) from None


def _period(query: MetricsQuery, now: datetime | None) -> tuple[datetime, datetime]:
    step = _STEP[query.interval]
    end = _ceil(_moment(query.end, "to"), query.interval) if query.end else None
    if end is None:
        end = _floor(now or utcnow(), query.interval) + step
    if query.start:
        start = _floor(_moment(query.start, "from"), query.interval)
    else:
        start = end - step * DEFAULT_BUCKETS[query.interval]
    if end <= start:
        raise BadRequest("'to' must be after 'from'.", field="to")
    if (end - start) / step > MAX_BUCKETS[query.interval]:
        raise BadRequest(
            f"The period is over {MAX_BUCKETS[query.interval]} {query.interval}s: "
            f"give a shorter one, or interval=day for a longer one.",
            field="from",
        )
    return start, end


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def report(
    session: Session, environment_id: str, query: MetricsQuery, now: datetime | None = None
) -> MetricsReport:
    """The period's metrics: a bucket per interval (every one, zeros included), the totals,
    and the funnel sent → delivered → opened → clicked. One read of the rollup's rows of the
    interval's span (an hour's or a day's: MetricSpan, the interval's names)."""
    start, end = period(query, now)
    rows = MetricRepository(session).buckets(
        environment_id,
        query.interval,
        start,
        end,
        template=query.template,
        automation=query.automation,
        channel=query.channel,
    )
    step = _STEP[query.interval]
    count = round((end - start) / step)
    buckets = [Bucket(start + step * i, dict.fromkeys(Metric.ALL, 0)) for i in range(count)]
    totals = dict.fromkeys(Metric.ALL, 0)
    for bucket_start, metric, value in rows:
        if metric not in totals:
            continue
        index = int((bucket_start - start) / step)
        buckets[index].counts[metric] += value
        totals[metric] += value
    funnel = [
        FunnelStage(
            stage,
            totals[stage],
            _ratio(totals[stage], totals[Metric.SENT]),
            _ratio(totals[stage], totals[FUNNEL[i - 1]]) if i else None,
        )
        for i, stage in enumerate(FUNNEL)
    ]
    return MetricsReport(query, start, end, buckets, totals, funnel)


def choices(
    session: Session, environment_id: str, start: datetime, end: datetime
) -> tuple[list[str], list[str]]:
    """The templates and automations with counts in the period: Studio's filter choices."""
    return MetricRepository(session).keys_seen(environment_id, start, end, 500)
