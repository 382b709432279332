"""Send windows: the days of the week and hours in which a message may go out.

One rule serves the send and delay steps (`window`) and a message's `delay` (Courier's
`until` in its opening-hours form, or `window`): `next_opening(at, window, zone)` is `at`
itself inside the window, else the first moment the window opens after it.

A window is given either as Tidings' object

    {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": {"start": "09:00", "end": "17:30"},
     "timezone": "Europe/Paris"}

or as Courier's subset of OpenStreetMap `opening_hours` ("Mo-Fr 09:00-17:30; Sa 10:00-12:00").
Hours include their start and exclude their end; an end before the start runs past midnight
into the next day ("22:00-06:00"), and "24:00" is the end of the day.

The zone (`window_zone`): a window's `timezone` when it names one; else the recipient's
profile `zoneinfo`, then `timezone` (IANA names); else the window's `fallback_timezone`; else
UTC. A profile zone that is no IANA name is passed over, never an error: the profile is the
recipient's data, not the sender's request.

Daylight saving time: the window is read on the local wall clock. An opening that falls in
the hour skipped when clocks go forward happens when the clocks land past it (02:30 on a
Paris spring-forward night opens at 03:00); an opening in the hour that repeats when clocks
go back happens at its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_OSM_DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
RECIPIENT = "recipient"
"""A window `timezone` that means "the recipient's" (the default)."""

_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_DAY_MINUTES = 24 * 60


class WindowError(ValueError):
    """A window that cannot be read: `at` is the path below the window (".hours.start",
    "" for the window itself), `reason` says what is wrong and how to fix it."""

    def __init__(self, at: str, reason: str) -> None:
        super().__init__(f"{at}: {reason}" if at else reason)
        self.at = at
        self.reason = reason


@dataclass(frozen=True)
class Span:
    """Open on `days` (0 is Monday) from `start` to `end`, in minutes of the day. An `end` at
    or before `start` runs into the next day."""

    days: frozenset[int]
    start: int = 0
    end: int = _DAY_MINUTES

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def holds(self, day: date, minute: int) -> bool:
        """Whether the wall-clock minute of `day` is inside the span."""
        if not self.overnight:
            return day.weekday() in self.days and self.start <= minute < self.end
        if day.weekday() in self.days and minute >= self.start:
            return True
        return (day - timedelta(days=1)).weekday() in self.days and minute < self.end


@dataclass(frozen=True)
class Window:
    """When sending is allowed (any span), and the zone it is read in (see `window_zone`)."""

    spans: tuple[Span, ...]
    timezone: str | None = None
    """A fixed IANA zone; None reads the recipient's."""
    fallback_timezone: str | None = None
    """The zone when the recipient has none (or none that is an IANA name)."""


# ---------------------------------------------------------------------------------------------
# Reading windows


def zone_named(name: Any) -> ZoneInfo | None:
    """The IANA zone of that name, or None when it is none."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone_field(value: Any, at: str, *, recipient_allowed: bool) -> str | None:
    if value is None:
        return None
    if recipient_allowed and value == RECIPIENT:
        return None
    if zone_named(value) is None:
        also = ' or "recipient" (the default: the recipient\'s profile timezone)'
        raise WindowError(
            at,
            f"{value!r} is not an IANA time zone; give one such as "
            f'"Europe/Paris" or "America/New_York"{also if recipient_allowed else ""}',
        )
    return str(value)


def _minutes(value: Any, at: str, *, end: bool) -> int:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    minutes = int(match[1]) * 60 + int(match[2]) if match else -1
    if match is None or minutes > _DAY_MINUTES or (minutes == _DAY_MINUTES and not end):
        latest = "24:00" if end else "23:59"
        raise WindowError(at, f"{value!r} is not a time of day; give HH:MM from 00:00 to {latest}")
    return minutes


def _day(value: Any, at: str) -> int:
    name = value.lower() if isinstance(value, str) else None
    for names in (DAY_NAMES, _LONG_DAY_NAMES):
        if name in names:
            return names.index(name)
    raise WindowError(at, f"{value!r} is not a day of the week; use {', '.join(DAY_NAMES)}")


def parse_window(value: Any) -> Window:
    """A window from its JSON: Tidings' object, or a Courier `opening_hours` string."""
    if isinstance(value, str):
        return parse_opening_hours(value)
    if not isinstance(value, dict):
        raise WindowError(
            "",
            'a window is an object such as {"days": ["mon", "fri"], "hours": {"start": '
            '"09:00", "end": "18:00"}} or opening hours such as "Mo-Fr 09:00-18:00"',
        )
    known = ("days", "hours", "timezone", "fallback_timezone")
    for key in value:
        if key not in known:
            raise WindowError(f".{key}", f"{key!r} is not a window field; use {', '.join(known)}")
    days = value.get("days", list(DAY_NAMES))
    if not isinstance(days, list) or not days:
        raise WindowError(
            ".days", 'give a non-empty list of days such as ["mon", "tue"], or leave it out'
        )
    numbers = frozenset(_day(day, f".days[{index}]") for index, day in enumerate(days))
    start, end = 0, _DAY_MINUTES
    if "hours" in value:
        hours = value["hours"]
        if not isinstance(hours, dict):
            raise WindowError(".hours", 'give {"start": "09:00", "end": "18:00"}')
        for key in hours:
            if key not in ("start", "end"):
                raise WindowError(f".hours.{key}", f"{key!r} is not an hours field; use start, end")
        for key in ("start", "end"):
            if key not in hours:
                raise WindowError(f".hours.{key}", 'needed: a time of day such as "09:00"')
        start = _minutes(hours["start"], ".hours.start", end=False)
        end = _minutes(hours["end"], ".hours.end", end=True)
        if start == end % _DAY_MINUTES:
            raise WindowError(
                ".hours.end", "the window would never close; leave hours out for the whole day"
            )
    return Window(
        (Span(numbers, start, end),),
        _zone_field(value.get("timezone"), ".timezone", recipient_allowed=True),
        _zone_field(value.get("fallback_timezone"), ".fallback_timezone", recipient_allowed=False),
    )


_OSM_RULE = re.compile(r"^(?:(?P<days>[A-Za-z,\- ]+?)\s+)?(?P<hours>[\d:,\- ]+)$")


def _osm_days(text: str, rule: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        ends = part.lower().split("-")
        if len(ends) > 2 or not all(end in _OSM_DAYS for end in ends):
            raise WindowError(
                "",
                f"{rule!r}: {part!r} is not a day or day range; use Mo Tu We Th Fr Sa Su, "
                'e.g. "Mo-Fr" or "Mo,We"',
            )
        first, last = _OSM_DAYS.index(ends[0]), _OSM_DAYS.index(ends[-1])
        days.update((first + step) % 7 for step in range((last - first) % 7 + 1))
    return frozenset(days)


def parse_opening_hours(text: str) -> Window:
    """Courier's delivery window: `opening_hours` rules such as "Mo-Fr 08:00-16:30", several
    separated by ";", each with optional days (every day without) and one or more hour
    ranges separated by ","."""
    spans: list[Span] = []
    rules = [rule.strip() for rule in text.split(";") if rule.strip()]
    if not rules:
        raise WindowError("", 'give opening hours such as "Mo-Fr 09:00-18:00"')
    for rule in rules:
        if rule == "24/7":
            spans.append(Span(frozenset(range(7))))
            continue
        match = _OSM_RULE.match(rule)
        if match is None:
            raise WindowError(
                "",
                f"{rule!r} is not opening hours Tidings reads; give days and hours such as "
                '"Mo-Fr 09:00-18:00" or "Sa 10:00-12:00,14:00-16:00"',
            )
        days = _osm_days(match["days"], rule) if match["days"] else frozenset(range(7))
        for hours in match["hours"].replace(" ", "").split(","):
            ends = hours.split("-")
            if len(ends) != 2:
                raise WindowError("", f"{rule!r}: {hours!r} is not an hour range like 09:00-18:00")
            start = _minutes(ends[0], "", end=False)
            end = _minutes(ends[1], "", end=True)
            if start == end % _DAY_MINUTES:
                raise WindowError("", f"{rule!r}: {hours!r} never closes; use 00:00-24:00")
            spans.append(Span(days, start, end))
    return Window(tuple(spans))


# ---------------------------------------------------------------------------------------------
# The zone and the opening


def window_zone(window: Window, profile: dict[str, Any] | None) -> tuple[ZoneInfo | tzinfo, str]:
    """The zone the window is read in, and where it came from ("window", "profile.zoneinfo",
    "profile.timezone", "fallback_timezone" or "default")."""
    if window.timezone is not None:
        zone = zone_named(window.timezone)
        if zone is not None:
            return zone, "window"
    for key in ("zoneinfo", "timezone"):
        zone = zone_named((profile or {}).get(key))
        if zone is not None:
            return zone, f"profile.{key}"
    zone = zone_named(window.fallback_timezone)
    if zone is not None:
        return zone, "fallback_timezone"
    return UTC, "default"


def is_open(at: datetime, window: Window, zone: tzinfo) -> bool:
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    return any(span.holds(local.date(), minute) for span in window.spans)


def _instant(day: date, minute: int, zone: tzinfo) -> datetime:
    """The first instant whose wall clock in `zone` reads `minute` of `day` or later."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone)  # fold=0: the earlier of a repeated time
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # The wall time was skipped (clocks went forward): the opening is when they land past it,
    # the transition, found between the two readings of the skipped time.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def next_opening(at: datetime, window: Window, zone: tzinfo) -> datetime:
    """`at` when it is inside the window, else the first moment after it that is (in UTC)."""
    if is_open(at, window, zone):
        return at
    today = at.astimezone(zone).date()
    openings = [
        _instant(today + timedelta(days=offset), span.start, zone)
        for offset in range(8)
        for span in window.spans
        if (today + timedelta(days=offset)).weekday() in span.days
    ]
    later = [opening for opening in openings if opening > at]
    if not later:  # every span has a day, so a week and a day always holds one
        raise WindowError("", "the window never opens")
    return min(later)
