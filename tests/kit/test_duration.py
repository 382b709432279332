from __future__ import annotations

from datetime import timedelta

import pytest

from tidings.kit.duration import DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 minutes", timedelta(minutes=5)),
        ("1 minute", timedelta(minutes=1)),
        ("2 days", timedelta(days=2)),
        ("1 day", timedelta(days=1)),
        ("3 hours", timedelta(hours=3)),
        ("1 hour 30 minutes", timedelta(hours=1, minutes=30)),
        ("1 hour and 30 minutes", timedelta(hours=1, minutes=30)),
        ("1 hour, 30 minutes", timedelta(hours=1, minutes=30)),
        ("2 weeks", timedelta(weeks=2)),
        ("1 week", timedelta(weeks=1)),
        ("45 seconds", timedelta(seconds=45)),
        ("1 second", timedelta(seconds=1)),
        ("1.5 hours", timedelta(minutes=90)),
        ("10min", timedelta(minutes=10)),
        ("  7 Days ", timedelta(days=7)),
        ("PT5M", timedelta(minutes=5)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("pt30s", timedelta(seconds=30)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5 minuts", "unknown unit 'minuts'"),
        ("", "is not a duration"),
        ("soon", "is not a duration"),
        ("5", "is not a duration"),
        ("minutes 5", "is not a duration"),
        ("PT5X", "not valid ISO-8601"),
        ("-5 minutes", "is not a duration"),
        ("-PT5M", "is negative"),
    ],
)
def test_refuses(text: str, reason: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f'"{text}" is ')
