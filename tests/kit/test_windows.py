"""The send-window rule: next_opening with fixed times, DST changes and zone fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tidings.kit.windows import (
    WindowError,
    next_opening,
    parse_opening_hours,
    parse_window,
    window_zone,
    zone_named,
)

PARIS = zone_named("Europe/Paris")
NEW_YORK = zone_named("America/New_York")
OFFICE = {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": {"start": "09:00", "end": "18:00"}}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def opening(at: datetime, window: Any, zone: Any = UTC) -> datetime:
    return next_opening(at, parse_window(window), zone)


# 2026-12-07 is a Monday.
@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 12, 7, 10), utc(2026, 12, 7, 10)),  # inside: now
        (utc(2026, 12, 7, 9), utc(2026, 12, 7, 9)),  # the start is inside
        (utc(2026, 12, 7, 7, 30), utc(2026, 12, 7, 9)),  # before: today's opening
        (utc(2026, 12, 7, 18), utc(2026, 12, 8, 9)),  # the end is outside: tomorrow's
        (utc(2026, 12, 11, 20), utc(2026, 12, 14, 9)),  # Friday evening: Monday
        (utc(2026, 12, 12, 12), utc(2026, 12, 14, 9)),  # Saturday: Monday
    ],
)
def test_office_hours_in_utc(at: datetime, expected: datetime) -> None:
    assert opening(at, OFFICE) == expected


def test_a_window_over_midnight_holds_on_both_sides() -> None:
    night = {"days": ["fri"], "hours": {"start": "22:00", "end": "06:00"}}
    assert opening(utc(2026, 12, 11, 23), night) == utc(2026, 12, 11, 23)  # Friday 23:00
    assert opening(utc(2026, 12, 12, 5, 59), night) == utc(2026, 12, 12, 5, 59)  # Sat morning
    assert opening(utc(2026, 12, 12, 6), night) == utc(2026, 12, 18, 22)  # closed: next Friday
    assert opening(utc(2026, 12, 11, 12), night) == utc(2026, 12, 11, 22)


def test_days_alone_open_at_midnight_and_24_00_ends_the_day() -> None:
    assert opening(utc(2026, 12, 7, 15), {"days": ["wed"]}) == utc(2026, 12, 9)
    late = {"hours": {"start": "20:00", "end": "24:00"}}
    assert opening(utc(2026, 12, 7, 23, 59), late) == utc(2026, 12, 7, 23, 59)
    assert opening(utc(2026, 12, 8, 0, 0), late) == utc(2026, 12, 8, 20)


def test_the_window_is_read_on_the_local_wall_clock() -> None:
    # 08:30 UTC on a Monday is 09:30 in Paris (open) and 03:30 in New York (closed).
    at = utc(2026, 12, 7, 8, 30)
    assert opening(at, OFFICE, PARIS) == at
    assert opening(at, OFFICE, NEW_YORK) == utc(2026, 12, 7, 14)


def test_paris_spring_forward_keeps_the_local_hour() -> None:
    # Clocks go from 02:00 CET to 03:00 CEST on Sunday 2026-03-29.
    nine = {"hours": {"start": "09:00", "end": "10:00"}}
    assert opening(utc(2026, 3, 28, 12), nine, PARIS) == utc(2026, 3, 29, 7)  # 09:00 CEST
    assert opening(utc(2026, 3, 27, 12), nine, PARIS) == utc(2026, 3, 28, 8)  # 09:00 CET
    # An opening in the skipped hour happens when the clocks land past it: 03:00 CEST.
    skipped = {"days": ["sun"], "hours": {"start": "02:30", "end": "04:00"}}
    assert opening(utc(2026, 3, 28, 12), skipped, PARIS) == utc(2026, 3, 29, 1)


def test_paris_fall_back_opens_at_the_first_of_the_repeated_hour() -> None:
    # Clocks go from 03:00 CEST back to 02:00 CET on Sunday 2026-10-25.
    repeated = {"days": ["sun"], "hours": {"start": "02:30", "end": "04:00"}}
    assert opening(utc(2026, 10, 24, 12), repeated, PARIS) == utc(2026, 10, 25, 0, 30)
    nine = {"hours": {"start": "09:00", "end": "10:00"}}
    assert opening(utc(2026, 10, 25, 0), nine, PARIS) == utc(2026, 10, 25, 8)  # 09:00 CET


def test_new_york_dst_changes_keep_the_local_hour() -> None:
    nine = {"hours": {"start": "09:00", "end": "17:00"}}
    # Spring forward on Sunday 2026-03-08: EST (-5) before, EDT (-4) after.
    assert opening(utc(2026, 3, 7, 23), nine, NEW_YORK) == utc(2026, 3, 8, 13)
    assert opening(utc(2026, 3, 6, 23), nine, NEW_YORK) == utc(2026, 3, 7, 14)
    # Fall back on Sunday 2026-11-01.
    assert opening(utc(2026, 10, 31, 23), nine, NEW_YORK) == utc(2026, 11, 1, 14)
    # 02:30 does not exist on 2026-03-08 in New York: the opening is 03:00 EDT.
    skipped = {"days": ["sun"], "hours": {"start": "02:30", "end": "05:00"}}
    assert opening(utc(2026, 3, 7, 12), skipped, NEW_YORK) == utc(2026, 3, 8, 7)


def test_courier_opening_hours() -> None:
    window = parse_opening_hours("Mo-Fr 08:00-16:30; Sa 10:00-12:00,14:00-15:00")
    assert next_opening(utc(2026, 12, 12, 12, 30), window, UTC) == utc(2026, 12, 12, 14)
    assert next_opening(utc(2026, 12, 12, 15), window, UTC) == utc(2026, 12, 14, 8)
    weekend = parse_opening_hours("Sa-Su 10:00-12:00")
    assert next_opening(utc(2026, 12, 7), weekend, UTC) == utc(2026, 12, 12, 10)
    wrapping = parse_opening_hours("Fr-Mo 10:00-11:00")  # Fr, Sa, Su, Mo
    assert next_opening(utc(2026, 12, 8, 12), wrapping, UTC) == utc(2026, 12, 11, 10)
    assert next_opening(utc(2026, 12, 8), parse_opening_hours("24/7"), UTC) == utc(2026, 12, 8)


def test_the_zone_the_window_is_read_in() -> None:
    window = parse_window(OFFICE)
    assert window_zone(window, {"timezone": "America/New_York"}) == (NEW_YORK, "profile.timezone")
    both = {"zoneinfo": "Europe/Paris", "timezone": "America/New_York"}
    assert window_zone(window, both) == (PARIS, "profile.zoneinfo")
    # A missing or invalid profile zone falls back to fallback_timezone, else UTC.
    fallback = parse_window({**OFFICE, "fallback_timezone": "Europe/Paris"})
    assert window_zone(fallback, {}) == (PARIS, "fallback_timezone")
    assert window_zone(fallback, {"timezone": "Mars/Olympus"}) == (PARIS, "fallback_timezone")
    assert window_zone(fallback, {"timezone": "../../etc/passwd"}) == (PARIS, "fallback_timezone")
    assert window_zone(window, None) == (UTC, "default")
    assert window_zone(window, {"timezone": 5}) == (UTC, "default")
    # A window that names its zone is read there, whatever the recipient's.
    fixed = parse_window({**OFFICE, "timezone": "America/New_York"})
    assert window_zone(fixed, {"timezone": "Europe/Paris"}) == (NEW_YORK, "window")
    recipients = parse_window({**OFFICE, "timezone": "recipient"})
    assert window_zone(recipients, {"timezone": "Europe/Paris"}) == (PARIS, "profile.timezone")


def test_an_invalid_profile_zone_opens_as_the_fallback_does() -> None:
    window = parse_window({**OFFICE, "fallback_timezone": "America/New_York"})
    zone, _ = window_zone(window, {"timezone": "Not/AZone"})
    assert next_opening(utc(2026, 12, 7, 8, 30), window, zone) == utc(2026, 12, 7, 14)
    zone, _ = window_zone(parse_window(OFFICE), {"timezone": ""})
    assert next_opening(utc(2026, 12, 7, 8, 30), parse_window(OFFICE), zone) == utc(2026, 12, 7, 9)


@pytest.mark.parametrize(
    ("window", "at", "reason"),
    [
        ({"days": []}, ".days", "non-empty list"),
        ({"days": ["mon", "funday"]}, ".days[1]", "'funday' is not a day of the week"),
        ({"hours": {"start": "9am", "end": "18:00"}}, ".hours.start", "not a time of day"),
        ({"hours": {"start": "09:00", "end": "24:01"}}, ".hours.end", "not a time of day"),
        ({"hours": {"start": "24:00", "end": "02:00"}}, ".hours.start", "00:00 to 23:59"),
        ({"hours": {"start": "09:00"}}, ".hours.end", "needed"),
        ({"hours": {"start": "09:00", "end": "09:00"}}, ".hours.end", "never close"),
        ({"hours": {"begin": "09:00"}}, ".hours.begin", "not an hours field"),
        ({"timezone": "Paris"}, ".timezone", "not an IANA time zone"),
        ({"fallback_timezone": "recipient"}, ".fallback_timezone", "not an IANA time zone"),
        ({"weekdays": ["mon"]}, ".weekdays", "not a window field"),
        (7, "", "a window is an object"),
        ("Mo-Fx 09:00-10:00", "", "'Mo-Fx' is not a day"),
        ("Mo-Fr 9-10", "", "not a time of day"),
        ("whenever", "", "not opening hours"),
    ],
)
def test_invalid_windows_say_where_and_why(window: Any, at: str, reason: str) -> None:
    with pytest.raises(WindowError) as caught:
        parse_window(window)
    assert caught.value.at == at
    assert reason in caught.value.reason
