"""A new run is one INSERT that leaves the rest of the unit of work pending."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from tidings.automation.lifecycle import start_run
from tidings.models import AutomationRun, RunStatus
from tidings.runtime import Runtime
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import default_workspace

DEFINITION = {"steps": [{"action": "delay", "duration": "1h"}]}


def test_a_new_run_takes_its_id_without_flushing_what_is_pending(runtime: Runtime) -> None:
    statements: list[str] = []

    def record(*arguments: Any) -> None:
        statements.append(str(arguments[2]).split()[0].upper())

    with runtime.database.write() as (session, _):
        workspace = default_workspace(session)
        environment = WorkspaceRepository(session).environment_by_name(workspace.id, "test")
        assert environment is not None
        scope = {"workspace_id": workspace.id, "environment_id": environment.id}
        first = start_run(session, **scope, definition=DEFINITION, source="invoke/test")
        first.status = RunStatus.WAITING  # pending in the unit of work
        event.listen(runtime.database.engine, "before_cursor_execute", record)
        try:
            second = start_run(session, **scope, definition=DEFINITION, source="invoke/test")
            # Every column is known without loading it back.
            assert (second.attempts, second.step_index, second.error, second.wake_at) == (
                0,
                0,
                None,
                None,
            )
            assert second.status == RunStatus.PROCESSING
        finally:
            event.remove(runtime.database.engine, "before_cursor_execute", record)
        # Its INSERT ran on the driver's cursor, and nothing went through the session: the
        # first run's pending change was not flushed for it, nothing was loaded back.
        assert statements == []
        assert second.id > first.id
        assert first in session.dirty
        ids = (first.id, second.id)
    with runtime.database.read() as session:
        runs = session.scalars(select(AutomationRun).where(AutomationRun.id.in_(ids)))
        stored = {run.id: run for run in runs}
        assert stored[ids[0]].status == RunStatus.WAITING
        assert stored[ids[1]].status == RunStatus.PROCESSING
        assert stored[ids[1]].context["template"] is None
