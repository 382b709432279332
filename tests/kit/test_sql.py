"""`insert_loaded`: one INSERT … RETURNING for a new ORM row, which then stands in the
session as loaded."""

from __future__ import annotations

from sqlalchemy import inspect, select

from tidings.kit.sql import insert_loaded
from tidings.kit.time import utcnow
from tidings.models import Environment, Event
from tidings.models.event import EventStatus
from tidings.runtime import Runtime


def _event(environment: Environment, message_id: str) -> Event:
    return Event(
        workspace_id=environment.workspace_id,
        environment_id=environment.id,
        source="segment",
        message_id=message_id,
        type="track",
        name="track/Order Shipped",
        user_id="u1",
        payload={"event": "Order Shipped"},
        received_at=utcnow(),
    )


def test_a_row_is_inserted_with_its_defaults_and_stands_as_loaded(runtime: Runtime) -> None:
    with runtime.database.write() as (session, _):
        environment = session.scalars(select(Environment)).first()
        assert environment is not None
        row = _event(environment, "m-1")
        insert_loaded(session, row)
        state = inspect(row)
        assert row.id is not None
        assert state.persistent
        assert not state.modified
        # Defaults are set on the row itself, nothing left to load: constants, and a new
        # value of each callable default (`diagnostics`: a list of the row's own).
        assert (row.status, row.attempts, row.error) == (EventStatus.RECEIVED, 0, None)
        assert state.dict["diagnostics"] == []
        assert state.dict["effects"] == []
        assert state.dict["diagnostics"] is not state.dict["effects"]
        row.status = EventStatus.PROCESSED  # a later change is an UPDATE at the flush
        key = row.id
    with runtime.database.read() as session:
        stored = session.get(Event, key)
        assert stored is not None
        assert (stored.message_id, stored.status, stored.attempts) == (
            "m-1",
            EventStatus.PROCESSED,
            0,
        )
        assert stored.diagnostics == []
        assert stored.payload == {"event": "Order Shipped"}


def test_rows_of_one_table_each_get_their_own_key(runtime: Runtime) -> None:
    with runtime.database.write() as (session, _):
        environment = session.scalars(select(Environment)).first()
        assert environment is not None
        rows = [_event(environment, f"m-{n}") for n in range(3)]
        for row in rows:
            insert_loaded(session, row)
        keys = [row.id for row in rows]
    assert len(set(keys)) == 3
    with runtime.database.read() as session:
        found = session.scalars(select(Event.message_id).where(Event.id.in_(keys))).all()
    assert sorted(found) == ["m-0", "m-1", "m-2"]
