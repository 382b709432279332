"""The rollup's reads and the send path's increment search keys, never scan: what keeps them
fast whatever the number of messages (docs/deliverability.md, "Metrics"; bench/metrics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.plans import captured, plan
from tidings.analytics.repository import _COUNT_DELIVERY
from tidings.runtime import Runtime


@pytest.mark.parametrize(
    "params",
    [{}, {"channel": "email"}, {"template": "shipped"}, {"automation": "weekly"}],
)
def test_a_report_reads_a_range_of_an_index(
    runtime: Runtime, client: TestClient, keys: Keys, params: dict[str, str]
) -> None:
    """The primary key's range of the period, or the template's or automation's index: which
    one SQLite picks depends on the data (bench/metrics measures both at scale)."""
    with captured(runtime, "message_metric") as statements:
        response = client.get("/analytics/messages", params=params, headers=bearer(keys.test))
        assert response.status_code == 200, response.text
    ((sql, parameters),) = statements
    if not runtime.database.is_sqlite:
        return  # SQLite's plans; Postgres has the same indexes
    found = plan(runtime, sql, parameters)
    assert "SEARCH message_metric USING" in found, found
    assert "SCAN message_metric" not in found, found


def test_the_send_paths_increment_looks_up_by_keys(runtime: Runtime) -> None:
    if not runtime.database.is_sqlite:
        return  # SQLite's plans; Postgres has the same keys
    dialect = runtime.database.engine.dialect
    sql, parameters = _COUNT_DELIVERY._compile(dialect)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    found = plan(
        runtime, sql, parameters({"metric": "sent", "hour": at, "day": at, "delivery_id": 1})
    )
    assert "SEARCH d USING INTEGER PRIMARY KEY" in found, found
    assert "SEARCH m USING INTEGER PRIMARY KEY" in found, found
    # The only scans are of the two constant rows (the hour's and the day's buckets).
    assert "SCAN message" not in found, found
    assert "SCAN d" not in found, found
    assert "SCAN m" not in found, found
