"""The condition language: parsing with exact field paths, evaluation, and the time at which
an answer can next change by time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidings.audience.conditions import (
    ConditionError,
    Facts,
    Occurrence,
    evaluate,
    from_courier,
    needs,
    parse,
)

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def check(condition: dict[str, Any], facts: Facts) -> tuple[bool, datetime | None]:
    return evaluate(parse(condition), facts, NOW)


PRICING = {
    "all": [
        {"trait": "plan", "equals": "free"},
        {"event": "Viewed Pricing", "at_least": 2, "within": "7 days"},
        {"not": {"event": "Upgraded"}},
    ]
}


def viewed(*ages: float, name: str = "track/Viewed Pricing", **properties: Any) -> Facts:
    return Facts(
        traits={"plan": "free"},
        events={name: [Occurrence(days_ago(age), properties) for age in sorted(ages)]},
    )


def test_viewed_pricing_twice_this_week_and_not_upgraded() -> None:
    assert check(PRICING, viewed(1, 3)) == (True, days_ago(3) + timedelta(days=7))
    assert check(PRICING, viewed(1))[0] is False
    assert check(PRICING, viewed(1, 8))[0] is False
    upgraded = viewed(1, 3)
    upgraded.events = {**upgraded.events, "track/Upgraded": [Occurrence(days_ago(0), {})]}
    assert check(PRICING, upgraded)[0] is False
    pro = viewed(1, 3)
    pro.traits = {"plan": "pro"}
    assert check(PRICING, pro)[0] is False


def test_the_recheck_is_when_the_second_newest_view_leaves_the_window() -> None:
    # Three views: the answer turns false when the second newest (2 days old) passes 7 days.
    assert check(PRICING, viewed(0.5, 2, 6))[1] == days_ago(2) + timedelta(days=7)
    # Not yet in: more time alone cannot bring the user in, so there is no re-check.
    assert check(PRICING, viewed(0.5))[1] is None


def test_a_courier_inbound_event_counts_as_the_same_track() -> None:
    facts = viewed(1, name="Viewed Pricing")
    facts.events = {**facts.events, "track/Viewed Pricing": [Occurrence(days_ago(2), {})]}
    assert check(PRICING, facts)[0] is True


def test_where_filters_each_event_by_its_properties() -> None:
    condition = {
        "event": "Viewed Pricing",
        "at_least": 2,
        "where": [{"property": "page.plan", "in": ["team", "pro"]}],
    }
    assert check(condition, viewed(1, 2, page={"plan": "pro"}))[0] is True
    assert check(condition, viewed(1, 2, page={"plan": "starter"}))[0] is False


@pytest.mark.parametrize(
    ("leaf", "traits", "expected"),
    [
        ({"equals": "DE"}, {"country": "DE"}, True),
        ({"equals": 3}, {"country": 3.0}, True),
        ({"equals": True}, {"country": 1}, False),
        ({"not_equals": "DE"}, {}, True),
        ({"contains": "erm"}, {"country": "Germany"}, True),
        ({"contains": "DE"}, {"country": ["FR", "DE"]}, True),
        ({"contains": 5}, {"country": "5"}, False),
        ({"starts_with": "Ger"}, {"country": "Germany"}, True),
        ({"ends_with": "any"}, {"country": "Germany"}, True),
        ({"in": ["DE", "AT"]}, {"country": "AT"}, True),
        ({"exists": True}, {"country": None}, False),
        ({"exists": False}, {}, True),
        ({"gt": 10}, {"country": "12"}, True),
        ({"lte": 10}, {"country": "ten"}, False),
        ({"before": "2030-01-01"}, {"country": "2029-12-31T10:00:00Z"}, True),
        ({"after": "-3 days"}, {"country": "2030-01-09T00:00:00Z"}, True),
        ({"within": "1 day"}, {"country": "2030-01-08T00:00:00Z"}, False),
    ],
)
def test_trait_operators(leaf: dict[str, Any], traits: dict[str, Any], expected: bool) -> None:
    assert check({"trait": "country", **leaf}, Facts(traits=traits))[0] is expected


def test_a_relative_time_on_a_trait_is_rechecked_when_it_comes_due() -> None:
    trial = {"trait": "trial_ends_at", "before": "+3 days"}
    facts = Facts(traits={"trial_ends_at": "2030-01-20T12:00:00Z"})
    assert check(trial, facts) == (False, datetime(2030, 1, 17, 12, 0, tzinfo=UTC))
    recent = {"trait": "signed_up_at", "within": "7 days"}
    assert check(recent, Facts(traits={"signed_up_at": "2030-01-09T12:00:00Z"})) == (
        True,
        datetime(2030, 1, 16, 12, 0, tzinfo=UTC),
    )


def test_lists_tenants_and_first_and_last_seen() -> None:
    facts = Facts(
        lists=frozenset({"beta"}),
        tenants=frozenset({"acme"}),
        first_seen=days_ago(40),
        last_seen=days_ago(20),
    )
    assert check({"list": "beta"}, facts)[0] is True
    assert check({"tenant": "other"}, facts)[0] is False
    assert check({"first_seen": {"within": "30 days"}}, facts)[0] is False
    dormant = {"last_seen": {"before": "-14 days"}}
    assert check(dormant, facts) == (True, None)
    assert check({"any": [{"tenant": "acme"}, {"list": "x"}]}, Facts())[0] is False


@pytest.mark.parametrize(
    ("condition", "at", "reason"),
    [
        ({}, "", "a condition is an object"),
        ({"all": []}, ".all", "non-empty list"),
        ({"all": [{"trait": "plan"}]}, ".all[0]", "exactly one operator"),
        ({"trait": "plan", "equals": 1, "gt": 2}, ".gt", "exactly one operator"),
        ({"trait": "plan", "equal": 1}, ".equal", '"equal" is not a field of a trait'),
        ({"trait": "a..b", "exists": True}, ".trait", "has an empty part"),
        ({"trait": "n", "gt": "ten"}, ".gt", "must be a number"),
        ({"trait": "n", "in": []}, ".in", "must be a list of 1 to"),
        ({"trait": "n", "before": "soon"}, ".before", "is not a time"),
        ({"event": "X", "at_least": 0}, ".at_least", "whole number from 1"),
        ({"event": "X", "within": "7 parsecs"}, ".within", "unknown unit"),
        ({"event": "X", "within": "7 days", "since": "now"}, ".since", "not both"),
        ({"event": "X", "where": [{"page": 1}]}, ".where[0]", "is a property condition"),
        ({"not": {"list": ""}}, ".not.list", "must be a list id"),
        ({"last_seen": {"at": "now"}}, ".last_seen.at", "is not a field of last_seen"),
        ({"segment": "x"}, "", "names no condition"),
    ],
)
def test_errors_name_the_exact_field(condition: dict[str, Any], at: str, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse(condition)
    assert caught.value.at == at
    assert reason in caught.value.reason


def test_a_condition_is_bounded() -> None:
    deep: dict[str, Any] = {"list": "x"}
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(ConditionError, match="nest at most"):
        parse(deep)
    with pytest.raises(ConditionError, match="at most 100 parts"):
        parse({"any": [{"list": f"l{n}"} for n in range(101)]})


def test_what_a_condition_reads() -> None:
    read = needs(parse(PRICING))
    assert read.traits
    assert not read.lists
    assert read.events == {"track/Viewed Pricing", "Viewed Pricing", "track/Upgraded", "Upgraded"}


def test_courier_filters_read_as_conditions() -> None:
    courier = {
        "operator": "AND",
        "filters": [
            {"operator": "EQ", "path": "plan", "value": "pro"},
            {
                "operator": "OR",
                "filters": [
                    {"operator": "GTE", "path": "seats", "value": "10"},
                    {"operator": "MEMBER_OF", "path": "", "value": "acme"},
                ],
            },
            {"operator": "OMIT", "path": "tags", "value": "churned"},
        ],
    }
    condition = from_courier(courier)
    assert condition == {
        "all": [
            {"trait": "plan", "equals": "pro"},
            {"any": [{"trait": "seats", "gte": 10.0}, {"tenant": "acme"}]},
            {"not": {"trait": "tags", "contains": "churned"}},
        ]
    }
    facts = Facts(traits={"plan": "pro", "seats": 3, "tags": []}, tenants=frozenset({"acme"}))
    assert evaluate(parse(condition), facts, NOW)[0] is True
    with pytest.raises(ConditionError) as caught:
        from_courier({"filters": [{"operator": "LIKE", "path": "a", "value": "b"}]})
    assert caught.value.at == ".filters[0].operator"
