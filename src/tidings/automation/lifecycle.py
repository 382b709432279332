"""A run's row: starting a run, canceling one, and retrying a failed one.

The engine (`automation.runs`) and the steps that start or cancel other runs (invoke,
cancel) both change runs through these; a retry (API or Studio) puts a failed run back in
the engine's hands, which then runs its failed step as it runs any step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tidings.automation.repository import RunRepository
from tidings.automation.steps.branch import program
from tidings.automation.steps.values import cancelation_token, namespace
from tidings.kit.ids import new_id
from tidings.kit.time import isoformat, utcnow
from tidings.models import Automation, AutomationRun, AutomationVersion, RunStatus
from tidings.observability import tracing
from tidings.profile.repository import ProfileRepository
from tidings.workspace.service import Scope


def start_run(
    session: Session,
    *,
    workspace_id: str,
    environment_id: str,
    definition: dict[str, Any],
    source: str,
    automation_id: str | None = None,
    version_pk: int | None = None,
    recipient: str | None = None,
    data: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    event_pk: int | None = None,
    brand: str | None = None,
    template: str | None = None,
    parent: AutomationRun | None = None,
) -> AutomationRun:
    """Insert a PROCESSING run; the caller enqueues `advance_run` after committing."""
    stored = _stored_profile(session, Scope(workspace_id, environment_id, "", ""), recipient)
    context: dict[str, Any] = {
        "data": dict(data or {}),
        "profile": {**stored, **(profile or {})},
        "event": event or {},
        "recipient": recipient,
        "brand": brand,
        "template": template or automation_id,
        "refs": {},
        # Given at invoke: also laid over the stored profile in the `to` of this run's sends.
        "profile_overrides": dict(profile or {}),
        "depth": (parent.context.get("depth", 0) + 1) if parent is not None else 0,
    }
    if tracing.enabled:
        tracing.stamp(context)  # its steps, in later jobs too, continue this trace
    now = utcnow()
    steps, token = definition["steps"], definition.get("cancelation_token")
    run = AutomationRun(
        run_id=new_id("run"),
        workspace_id=workspace_id,
        environment_id=environment_id,
        automation_id=automation_id,
        version_pk=version_pk,
        definition={"steps": steps, "cancelation_token": token},
        source=source[:400],
        event_pk=event_pk,
        parent_run_id=parent.run_id if parent is not None else None,
        recipient=recipient,
        cancelation_token=cancelation_token(token, namespace(context)),
        status=RunStatus.PROCESSING,
        step_index=0,
        step_count=len(program(steps)),  # nested steps included
        context=context,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    return RunRepository(session).add(run)


def start_automation_run(
    session: Session,
    automation: Automation,
    version: AutomationVersion,
    **details: Any,
) -> AutomationRun:
    """`start_run` of `version` of a saved automation, in the automation's environment;
    `details` are `start_run`'s other keywords (`source` among them)."""
    return start_run(
        session,
        workspace_id=automation.workspace_id,
        environment_id=automation.environment_id,
        definition=version.definition,
        automation_id=automation.automation_id,
        version_pk=version.id,
        **details,
    )


def _stored_profile(session: Session, scope: Scope, recipient: str | None) -> dict[str, Any]:
    row = ProfileRepository(session).get(scope, recipient) if recipient else None
    return dict(row.data) if row is not None else {}


def cancel_run(session: Session, run: AutomationRun, reason: str) -> None:
    now = utcnow()
    row = RunRepository(session).step(run.id, run.step_index)
    if row is not None and row.finished_at is None:
        row.status = RunStatus.CANCELED
        row.finished_at = row.updated_at = now
    if run.status == RunStatus.WAITING_FOR_EVENT:
        RunRepository(session).delete_wait(run.id)
    run.status = RunStatus.CANCELED
    run.wake_at = None
    run.error = reason
    run.finished_at = run.updated_at = now


def retry_run(session: Session, run: AutomationRun, by: str) -> None:
    """Put a failed (ERROR) run back on the step that failed, PROCESSING with fresh attempts;
    the caller enqueues `advance_run` after committing.

    The failed step's record is taken off (the engine writes a new one when it runs the
    step again) and kept in `context["retries"]`, with who retried and when: the run's
    history shows each failure that a retry set aside.
    """
    now = utcnow()
    row = RunRepository(session).step(run.id, run.step_index)
    retry: dict[str, Any] = {
        "at": isoformat(now),
        "by": by[:300],
        "position": run.step_index,
        "action": row.action if row is not None else None,
        "error": run.error,
        "failed_at": isoformat(run.finished_at),
    }
    if row is not None:
        session.delete(row)
    context = dict(run.context)
    context["retries"] = [*context.get("retries", []), retry]
    run.context = context
    run.status = RunStatus.PROCESSING
    run.attempts = 0
    run.error = None
    run.wake_at = None
    run.owner = None
    run.finished_at = None
    run.updated_at = now
