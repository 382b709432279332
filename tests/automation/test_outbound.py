"""fetch-data and send-list data sources can't be aimed inward: a literal URL is refused when
the automation is saved (or invoked ad hoc), a URL built from data when the run requests it,
ending the run in ERROR without a retry. These tests run WITHOUT the loopback allowance."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.automation.test_runs import invoke, run_in
from tests.conftest import Keys, bearer
from tests.kit.test_outbound import INTERNAL_HOSTS
from tidings.config import Settings
from tidings.kit.allowances import parse_allowances
from tidings.models import AutomationRun
from tidings.runtime import Runtime


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbound_allow": ""})


def fetch(url: str) -> dict[str, Any]:
    return {"action": "fetch-data", "webhook": {"url": url, "method": "GET"}}


def data_source(url: str) -> dict[str, Any]:
    return {
        "action": "send-list",
        "list": "beta",
        "content": {"title": "t", "body": "b"},
        "data_source": {"webhook": {"url": url, "method": "POST"}},
    }


@pytest.mark.parametrize(
    ("step", "field"),
    [(fetch, "steps[0].webhook.url"), (data_source, "steps[0].data_source.webhook.url")],
)
def test_a_literal_url_aimed_inward_is_refused_when_saved_and_invoked(
    client: TestClient, keys: Keys, step: Any, field: str
) -> None:
    for host in INTERNAL_HOSTS:
        url = f"http://{host}/latest/meta-data/"
        response = client.put(
            "/automations/enrich", json={"steps": [step(url)]}, headers=bearer(keys.test)
        )
        assert response.status_code == 400, (host, response.text)
        error = response.json()
        assert error["code"] == "invalid_automation", host
        assert error["field"] == field, host
        assert "internal address" in error["message"], host
        assert "TIDINGS_OUTBOUND_ALLOW" in error["message"], host

        response = client.post(
            "/automations/invoke",
            json={"automation": {"steps": [step(url)]}},
            headers=bearer(keys.test),
        )
        assert response.status_code == 400, (host, response.text)
        assert response.json()["field"] == f"automation.{field}", host
    assert client.get("/automations/enrich", headers=bearer(keys.test)).status_code == 404


def test_urls_with_liquid_and_public_urls_are_saved(client: TestClient, keys: Keys) -> None:
    steps = [fetch("{{ data.url }}"), fetch("https://api.example.com/users/{{ recipient }}")]
    response = client.put("/automations/enrich", json={"steps": steps}, headers=bearer(keys.test))
    assert response.status_code == 201, response.text


def _attempts(runtime: Runtime, run_id: str) -> int:
    with runtime.database.read() as session:
        attempts = session.scalar(
            select(AutomationRun.attempts).where(AutomationRun.run_id == run_id)
        )
    assert attempts is not None
    return attempts


def test_a_fetch_data_url_built_inward_ends_the_run_at_once(
    client: TestClient, keys: Keys, runtime: Runtime, httpserver: HTTPServer
) -> None:
    for host in INTERNAL_HOSTS:
        run_id = invoke(
            client,
            keys.test,
            "/automations/invoke",
            {
                "automation": {"steps": [fetch("{{ data.url }}")]},
                "data": {"url": f"http://{host}:{httpserver.port}/secrets"},
            },
        )
        run = run_in(client, keys.test, run_id, "ERROR", "PROCESSED")
        assert run["status"] == "ERROR", host
        assert "was refused" in run["error"], host
        assert "TIDINGS_OUTBOUND_ALLOW" in run["error"], host
        assert run["context"]["data"] == {"url": f"http://{host}:{httpserver.port}/secrets"}
        assert _attempts(runtime, run_id) == 1, host
    assert httpserver.log == []


def test_a_data_source_url_that_resolves_inward_ends_the_run_and_sends_nothing(
    client: TestClient, keys: Keys, runtime: Runtime, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    assert client.put("/lists/beta", json={"name": "Beta"}, headers=headers).status_code == 204
    assert client.put("/lists/beta/subscriptions/a1", headers=headers).status_code == 204
    runtime.outbound.resolver = lambda host, port: ["169.254.169.254"]
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {"automation": {"steps": [data_source("http://metadata.internal.test/user")]}},
    )
    run = run_in(client, keys.test, run_id, "ERROR", "PROCESSED")
    assert run["status"] == "ERROR"
    assert "metadata.internal.test (169.254.169.254)" in run["error"]
    assert _attempts(runtime, run_id) == 1
    assert client.get("/messages", headers=headers).json()["results"] == []


def test_an_allowed_internal_url_is_fetched(
    client: TestClient, keys: Keys, runtime: Runtime, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/loyalty").respond_with_json({"points": 7})
    runtime.outbound.allowances = parse_allowances(f"127.0.0.1:{httpserver.port}")
    url = f"http://127.0.0.1:{httpserver.port}/loyalty"
    response = client.put(
        "/automations/enrich", json={"steps": [fetch(url)]}, headers=bearer(keys.test)
    )
    assert response.status_code == 201, response.text
    run_id = invoke(client, keys.test, "/automations/enrich/invoke", {"recipient": "u1"})
    run = run_in(client, keys.test, run_id, "PROCESSED", "ERROR")
    assert run["status"] == "PROCESSED", run["error"]
    assert run["context"]["data"] == {"points": 7}
