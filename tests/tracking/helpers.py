"""Helpers for the Tracking API and signed-source tests."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import bearer
from tidings.models import Event
from tidings.runtime import Runtime


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored_events(runtime: Runtime, **where: Any) -> list[dict[str, Any]]:
    """Every stored event row (payload included), oldest first."""
    with runtime.database.read() as session:
        statement = select(Event).order_by(Event.id)
        for name, value in where.items():
            statement = statement.where(getattr(Event, name) == value)
        return [
            {
                "message_id": row.message_id,
                "type": row.type,
                "name": row.name,
                "user_id": row.user_id,
                "source": row.source,
                "status": row.status,
                "timestamp": row.timestamp,
                "payload": row.payload,
            }
            for row in session.scalars(statement)
        ]


def event_record(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    response = client.get(f"/integrations/segment/events/{message_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)
