from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from tidings.kit.api import creates_or_replaces, from_row


@dataclass
class Row:
    id: int
    name: str
    created_at: datetime
    finished_at: datetime | None


class View(BaseModel):
    id: str
    name: str
    created_at: str
    finished_at: str | None
    state: str = "live"


def test_from_row_reads_the_fields_of_the_same_name() -> None:
    created = datetime(2026, 8, 18, 22, 6, 36, tzinfo=timezone(timedelta(hours=2)))
    view = from_row(View, Row(7, "Welcome", created, None), id="welcome")
    assert view == View(
        id="welcome", name="Welcome", created_at="2026-08-18T20:06:36Z", finished_at=None
    )


def test_from_row_values_win_over_the_row() -> None:
    row = Row(7, "Welcome", datetime(2026, 1, 1, tzinfo=UTC), None)
    view = from_row(View, row, id="welcome", name="Renamed", state="archived")
    assert (view.name, view.state) == ("Renamed", "archived")


def test_from_row_refuses_a_field_the_row_has_with_another_type() -> None:
    # The row's integer id is no view id: a view must give its own.
    with pytest.raises(ValidationError):
        from_row(View, Row(7, "Welcome", datetime(2026, 1, 1, tzinfo=UTC), None))


def test_creates_or_replaces_describes_both_answers() -> None:
    assert creates_or_replaces(View) == {
        "response_model": View,
        "responses": {201: {"model": View, "description": "Created."}},
    }
