"""Shared steps of the outbound webhook tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import bearer


def register(
    client: TestClient, key: str, url: str, *event_types: str, **fields: Any
) -> dict[str, Any]:
    response = client.post(
        "/webhooks/endpoints",
        json={"url": url, "event_types": list(event_types), **fields},
        headers=bearer(key),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(client: TestClient, key: str, **filters: str) -> list[dict[str, Any]]:
    response = client.get("/webhooks/deliveries", params=filters, headers=bearer(key))
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results
