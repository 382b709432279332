"""The run engine: starting runs, advancing them step by step, canceling and retrying them.

A run is a row (`AutomationRun`) with the steps it started with, a context (`data`, `profile`,
`event`, `recipient`, `brand`, `template`, and step outputs under `refs`) and `step_index`, the
next step to run. A job advances a run:

- Each step type is a module of `tidings.automation.steps`: a pydantic model of the step and
  its `run`, which the engine calls in the run's transaction (`_advance_loaded`).
- Steps that only touch the database (send, send-list, update-profile, cancel, invoke, and
  the start of a delay) run in one transaction together with their step record and the move
  to the next step. A crash before the commit leaves the step to run again; a crash after it
  leaves it done. So a re-driven run never sends twice: a send step's messages exist exactly
  when the step is recorded as done.
- fetch-data (and a send-list with a `data_source`, which fetches per subscriber) calls the
  network, which must not happen inside a transaction: the step is
  recorded as PROCESSING, the request runs, and its result is applied in a second transaction
  that first checks the run is still on that step (it may have been canceled meanwhile). A
  crash mid-request repeats the request (with the same `Idempotency-Key` when one is given).
- A delay sets the run WAITING with `wake_at` and schedules a job for that time. The sweeper
  also advances every run whose `wake_at` has passed, so a wake-up missed while nothing was
  running happens as soon as a consumer starts.
- A wait-for-event step sets the run WAITING_FOR_EVENT with `wake_at` at its timeout, and
  stores its wait (`AutomationRunWait`) in the same transaction. A matching event resolves
  it while it is processed (`resume_waiting_runs`); the timeout resolves it as a delay
  wakes. Both lock the run and take the wait off in the transaction that resolves the step,
  so exactly one of them does.

A branch step's arms are steps of the same flat program (`steps.branch.program`): `step_index`
is a position in it, and a finished step moves the run to the position its instruction
names (the chosen arm's first step, or the step after the branch).

A run in ERROR can be retried (`retry_by_api`, for the API and Studio): it is PROCESSING again
at the step that failed, and the same `advance_run` runs that step, as if it had never run.

Jobs are enqueued only after the commit that makes their work visible: each step adds them
to its unit of work's outbox (`tidings.db.Outbox`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation import service as definitions
from tidings.automation import steps
from tidings.automation.lifecycle import cancel_run, retry_run, start_automation_run, start_run
from tidings.automation.repository import RunRepository
from tidings.automation.steps.base import (
    Fetch,
    Outcome,
    RetryableStepError,
    Step,
    StepFailed,
    StepRun,
    Stop,
    Wait,
    WaitForEvent,
)
from tidings.automation.steps.branch import Instruction, program
from tidings.automation.steps.values import namespace
from tidings.automation.steps.wait_for_event import event_key, match_fields, match_key
from tidings.automation.triggers import audience_trigger_key
from tidings.db import Outbox
from tidings.errors import Conflict, found
from tidings.kit.expression import ExpressionError
from tidings.kit.missing import Missing
from tidings.kit.outbound import OutboundGuard
from tidings.kit.time import isoformat, utcnow
from tidings.message.pipeline import backoff_seconds
from tidings.models import AutomationRun, AutomationRunStep, AutomationRunWait, Event, RunStatus
from tidings.observability import tracing
from tidings.webhook_out import service as webhooks
from tidings.webhook_out.events import RUN_FAILED, Emission
from tidings.worker.context import WorkerContext
from tidings.workspace.service import Scope

_missing_run = Missing(
    "automation run", "GET /automations/runs lists the runs.", code="run_not_found", field="run_id"
)

logger = logging.getLogger(__name__)

# Steps a job runs before handing the run to a new job, so one long run can't hog a worker.
STEPS_PER_JOB = 50


# ---------------------------------------------------------------------------------------------
# Starting runs


def trigger_of(event: Event) -> tuple[str, str]:
    """The `{source, event}` trigger an event matches: segment/track/… or inbound/<name>."""
    if event.source == "segment":
        return "segment", event.name
    return "inbound", event.name


def event_data(event: Event) -> dict[str, Any]:
    """A track's properties, or an identify's or group's traits."""
    key = "traits" if event.type in ("identify", "group") else "properties"
    value = event.payload.get(key)
    return value if isinstance(value, dict) else {}


def start_triggered_runs(session: Session, event: Event) -> list[AutomationRun]:
    """Start every enabled automation the event triggers (after its own effects are applied)."""
    source, name = trigger_of(event)
    runs = []
    for automation, version in definitions.triggered_by(
        session, event.environment_id, source, name
    ):
        runs.append(
            start_automation_run(
                session,
                automation,
                version,
                source=f"{source}/{name}",
                # An anonymous visitor's events go to its anonymous profile.
                recipient=event.user_id or event.anonymous_id,
                data=event_data(event),
                event=event.payload,
                event_pk=event.id,
            )
        )
    return runs


def start_audience_runs(
    session: Session,
    *,
    environment_id: str,
    audience_id: str,
    user_id: str,
    on: str,
    at: datetime,
) -> list[AutomationRun]:
    """Start every enabled automation triggered by the user entering (`on` "enter") or
    leaving ("exit") the audience; called once per entry or exit (automation/membership.py)."""
    event = {"source": "audience", "audience": audience_id, "on": on, "at": isoformat(at)}
    return [
        start_automation_run(
            session,
            automation,
            version,
            source=f"audience/{audience_id}/{on}",
            recipient=user_id,
            data={"audience": audience_id, "on": on},
            event=event,
        )
        for automation, version in definitions.triggered_by(
            session, environment_id, "audience", audience_trigger_key(audience_id, on)
        )
    ]


def resume_waiting_runs(session: Session, event: Event) -> list[AutomationRun]:
    """Resolve the wait-for-event steps this event matches (before it starts any run, so a
    run never matches the event that started it), and return their runs: PROCESSING ones
    continue with their next step, as just-started runs do.

    The waits are looked up by index (environment, recipient, source, name), and each is
    compared by its match hash, so an event reads only its own recipient's waits."""
    recipient = event.user_id or event.anonymous_id
    if not recipient:
        return []
    source, name = trigger_of(event)
    repository = RunRepository(session)
    waits = repository.waits_for(event.environment_id, recipient, source, name)
    if not waits:
        return []
    properties = event_data(event)
    keys: dict[str, str | None] = {}
    resumed = []
    for run_pk, position, fields, key in waits:
        if fields not in keys:
            keys[fields] = event_key(properties, fields)
        if keys[fields] != key:
            continue
        run = repository.get_for_update(run_pk)
        repository.delete_wait(run_pk, position)
        if run is None or run.status != RunStatus.WAITING_FOR_EVENT or run.step_index != position:
            continue  # resolved meanwhile (its timeout, a cancel): the wait was left over
        output = {
            "matched": True,
            "timed_out": False,
            "event": properties,
            "message_id": event.message_id,
        }
        _resolve_wait(session, run, output, "on_match", utcnow())
        resumed.append(run)
    return resumed


def invoke(
    session: Session,
    scope: Scope,
    automation_id: str,
    body: dict[str, Any],
) -> AutomationRun:
    """`POST /automations/{id}/invoke`: a run of the current version, enabled or not."""
    automation, version = definitions.get(session, scope, automation_id)
    return start_automation_run(
        session,
        automation,
        version,
        source=f"invoke/{automation.automation_id}",
        recipient=body.get("recipient"),
        data=body.get("data"),
        profile=body.get("profile"),
        brand=body.get("brand"),
        template=body.get("template"),
    )


def invoke_ad_hoc(
    session: Session, scope: Scope, body: dict[str, Any], *, outbound: OutboundGuard
) -> AutomationRun:
    """`POST /automations/invoke`: steps given in the request, validated like a saved one."""
    automation = body.get("automation")
    if not isinstance(automation, dict):
        raise definitions.DefinitionError(
            "automation", 'needs {"steps": [...]} and optionally "cancelation_token"'
        )
    unknown = [key for key in automation if key not in ("steps", "cancelation_token")]
    if unknown:
        raise definitions.DefinitionError(
            f"automation.{unknown[0]}",
            f"{unknown[0]!r} is not a field of an ad hoc automation; use steps, cancelation_token",
        )
    try:
        definition = definitions.validate_definition("ad-hoc", automation, outbound=outbound)
        definitions.check_references(session, scope, "", definition)
    except definitions.DefinitionError as exc:
        raise definitions.DefinitionError(f"automation.{exc.field}", exc.reason) from exc
    return start_run(
        session,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        definition=definition,
        source="invoke/ad-hoc",
        recipient=body.get("recipient"),
        data=body.get("data"),
        profile=body.get("profile"),
        brand=body.get("brand"),
        template=body.get("template"),
    )


# ---------------------------------------------------------------------------------------------
# Advancing runs


@dataclass(frozen=True)
class FetchPlan:
    """A step's requests, prepared in one transaction, made outside any, and applied in
    another if the run is still at `position`."""

    run_pk: int
    position: int
    fetch: Fetch


_CONTINUE = "continue"


def advance_run(context: WorkerContext, run_pk: int) -> str:
    """Run the run's steps until it waits, ends, or has run STEPS_PER_JOB steps (then a new
    job continues it).

    Returns the run's status afterwards (or "missing").
    """
    state: str | FetchPlan = _CONTINUE
    for step in range(STEPS_PER_JOB):
        try:
            with context.database.write() as (session, outbox):
                state = _advance_one(session, context, run_pk, outbox)
                if state == _CONTINUE and step == STEPS_PER_JOB - 1:
                    outbox.add_run(run_pk)
        except StepFailed as exc:
            return _fail(context, run_pk, str(exc), permanent=True)
        except Exception as exc:
            logger.exception("advancing run %s failed", run_pk)
            return _fail(context, run_pk, f"{type(exc).__name__}: {exc}")
        if isinstance(state, FetchPlan):
            state = _fetch(context, state)
        if state != _CONTINUE:
            return state
    return RunStatus.PROCESSING


def _step_row(session: Session, run: AutomationRun, step: Step, now: datetime) -> AutomationRunStep:
    """The step's row. A new one joins the session at once only for a step that can be
    seen unfinished (a fetch between its transactions, a delay); any other step starts and
    ends in one transaction, so its row is added when it ends (`_finish_step`): one
    INSERT rather than an INSERT and an UPDATE."""
    # A step's row exists before its own transaction only after a failed attempt (which
    # counts in `attempts`) or a fetch's first transaction; otherwise it would have been
    # rolled back with the step, and there is nothing to look up.
    row = None
    # A run still WAITING here failed its step's run again after a wait (`runs_after_wait`).
    if run.attempts or step.calls_network or run.status == RunStatus.WAITING:
        row = RunRepository(session).step(run.id, run.step_index)
    if row is None:
        # The caller's `now`, which the step's finish also uses: a step never ends before
        # it started.
        row = AutomationRunStep(
            run_pk=run.id,
            position=run.step_index,
            action=step.action,
            ref=step.ref,
            status=RunStatus.PROCESSING,
            started_at=now,
            updated_at=now,
        )
        if step.calls_network or step.waits:
            session.add(row)
    return row


def _finish_step(
    session: Session,
    run: AutomationRun,
    row: AutomationRunStep,
    status: str,
    output: dict[str, Any] | None,
    now: datetime,
) -> None:
    session.add(row)  # a row new in this transaction joins the session now (_step_row)
    row.status = status
    row.output = output
    row.error = None
    row.updated_at = now
    row.finished_at = now
    if output is not None and row.ref:
        context = dict(run.context)
        context["refs"] = {**context.get("refs", {}), row.ref: output}
        run.context = context
    run.step_index = _instruction(run).after(output if status == RunStatus.PROCESSED else None)
    run.attempts = 0
    run.error = None
    run.wake_at = None
    run.updated_at = now
    if run.step_index >= run.step_count:
        run.status = RunStatus.PROCESSED
        run.finished_at = now


def _advance_one(
    session: Session, context: WorkerContext, run_pk: int, outbox: Outbox
) -> str | FetchPlan:
    run = RunRepository(session).get_for_update(run_pk)
    if run is None:
        return "missing"
    return _advance_loaded(session, context, run, outbox)


def advance_in_transaction(
    session: Session,
    context: WorkerContext,
    started: Sequence[AutomationRun],
    outbox: Outbox,
    isolated: bool = True,
) -> list[int]:
    """Run just-started runs' leading database-only steps in the caller's transaction (the
    event's), so the common run (a send) costs no transaction of its own.

    Each run goes under a savepoint: a step that fails is rolled back alone and left for the
    run's job, which records the failure in its own transaction. Returns the runs that still
    need a job: a fetch is next, or a step failed here. What the others made (messages,
    wake-ups) goes to `outbox`, the caller's.

    Not `isolated`: no savepoints, and a failing step raises; for a caller that rolls its
    whole transaction back then (tidings.event.batching processes the group's events again,
    each alone and isolated).
    """
    pending = []
    for run in started:
        local = Outbox()
        try:
            with session.begin_nested() if isolated else contextlib.nullcontext():
                state: str | FetchPlan = _CONTINUE
                for _ in range(STEPS_PER_JOB):
                    state = _advance_loaded(session, context, run, local)
                    if state != _CONTINUE:
                        break
        except Exception:
            if not isolated:
                raise
            logger.info("run %s continues in its own job", run.run_id, exc_info=True)
            pending.append(run.id)
            continue
        outbox.extend(local)
        if state == _CONTINUE or isinstance(state, FetchPlan):
            pending.append(run.id)
    return pending


def _advance_loaded(
    session: Session, context: WorkerContext, run: AutomationRun, outbox: Outbox
) -> str | FetchPlan:
    """One step of a run already locked in this transaction."""
    if run.status not in RunStatus.ACTIVE:
        return run.status
    now = utcnow()
    run.owner = None  # a request an earlier advance made is over, or was abandoned
    if run.status == RunStatus.WAITING:
        return _wake(session, context, run, outbox, now)
    if run.status == RunStatus.WAITING_FOR_EVENT:
        return _time_out(session, run, now)
    instructions = _program(run)
    if run.step_index >= len(instructions):
        run.status = RunStatus.PROCESSED
        run.finished_at = run.updated_at = now
        return run.status
    step = steps.load(instructions[run.step_index].step)
    if tracing.enabled:
        return tracing.traced(
            "run step",
            lambda: _run_step(session, context, run, outbox, now, step),
            lambda state: {"outcome": str(state)},
            parent=tracing.stored(run.context),
            attributes={
                "run_id": run.run_id,
                "automation_id": run.automation_id,
                "step_index": run.step_index,
                "action": step.action,
            },
        )
    return _run_step(session, context, run, outbox, now, step)


def _run_step(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    outbox: Outbox,
    now: datetime,
    step: Step,
) -> str | FetchPlan:
    row = _step_row(session, run, step, now)
    at = StepRun(session, context, run, namespace(run.context), outbox, now)
    try:
        applies = step.applies(at.names)
    except ExpressionError as exc:
        raise StepFailed(f"the `if` of step {run.step_index} does not parse: {exc}") from exc
    if not applies:
        _finish_step(session, run, row, RunStatus.SKIPPED, None, now)
        return _next(run)
    return _carry_out(at, row, step.run(at))


def _wake(
    session: Session, context: WorkerContext, run: AutomationRun, outbox: Outbox, now: datetime
) -> str | FetchPlan:
    """A waiting run: still waiting when it is early, else its delay step is done (or, for
    a step that `runs_after_wait`, runs again in this transaction)."""
    known = run.step_index < len(_program(run))
    step = steps.load(_instruction(run).step) if known else None
    early = run.wake_at is not None and run.wake_at > now
    if early and not (step is not None and step.wakes_early):
        return run.status  # early: the job scheduled for wake_at (or the sweeper) comes back
    row = RunRepository(session).step(run.id, run.step_index)
    run.status = RunStatus.PROCESSING
    run.wake_at = None
    if row is not None and step is not None and step.runs_after_wait:
        at = StepRun(session, context, run, namespace(run.context), outbox, now)
        return _carry_out(at, row, step.run(at))
    if row is not None:
        _finish_step(session, run, row, RunStatus.PROCESSED, row.output, now)
    else:
        run.step_index = _instruction(run).next if known else run.step_index + 1
    return _next(run)


def _time_out(session: Session, run: AutomationRun, now: datetime) -> str:
    """A run waiting for an event: still waiting before its timeout, else the step ends
    unmatched. A matching event resolved it first if the run is no longer waiting."""
    if run.wake_at is not None and run.wake_at > now:
        return run.status
    RunRepository(session).delete_wait(run.id)
    _resolve_wait(session, run, {"matched": False, "timed_out": True}, "on_timeout", now)
    return _next(run)


def _resolve_wait(
    session: Session, run: AutomationRun, output: dict[str, Any], after: str, now: datetime
) -> None:
    """End the run's wait-for-event step with `output`, then continue the run, or end it
    when the step's `after` (on_match, on_timeout) says stop. The run is locked, its wait
    taken off."""
    row = RunRepository(session).step(run.id, run.step_index)
    run.status = RunStatus.PROCESSING
    run.wake_at = None
    instruction = _instruction(run)
    stored = instruction.step
    if row is not None:
        _finish_step(session, run, row, RunStatus.PROCESSED, output, now)
    else:
        run.step_index = instruction.next
    if stored.get(after) == "stop" and run.status == RunStatus.PROCESSING:
        run.status = RunStatus.PROCESSED
        run.finished_at = now


def _carry_out(at: StepRun, row: AutomationRunStep, outcome: Outcome) -> str | FetchPlan:
    """What a step's `run` returned: requests to make, a wait, an early end, or the step's
    output."""
    run, now = at.run, at.now
    if isinstance(outcome, Fetch):
        # The requests run after this commits: the run is this process's until the result
        # is applied, so that the sweeper leaves it alone while the process lives.
        run.owner = at.context.owner
        run.updated_at = now
        at.session.flush()
        return FetchPlan(run.id, run.step_index, outcome)
    if isinstance(outcome, Wait):
        at.session.add(row)  # a step that waits only sometimes (a send with a window) adds it now
        row.status = RunStatus.WAITING
        row.output = {"until": isoformat(outcome.until)}
        row.updated_at = now
        run.status = RunStatus.WAITING
        run.wake_at = outcome.until
        run.updated_at = now
        at.outbox.add_run(run.id, outcome.until)
        return RunStatus.WAITING
    if isinstance(outcome, Stop):
        _finish_step(at.session, run, row, outcome.status, outcome.output, now)
        run.status = outcome.status
        run.error = outcome.reason[:2000]
        run.finished_at = now
        return run.status
    if isinstance(outcome, WaitForEvent):
        return _wait_for_event(at, row, outcome)
    _finish_step(at.session, run, row, RunStatus.PROCESSED, outcome, now)
    return _next(run)


def _wait_for_event(at: StepRun, row: AutomationRunStep, outcome: WaitForEvent) -> str:
    """Pause the run for an event: its wait, found by the events that may match it, and a
    wake-up at the timeout."""
    run, now = at.run, at.now
    row.status = RunStatus.WAITING_FOR_EVENT
    row.output = {
        "until": isoformat(outcome.until),
        "event": outcome.event,
        "match": outcome.match,
    }
    row.updated_at = now
    run.status = RunStatus.WAITING_FOR_EVENT
    run.wake_at = outcome.until
    run.updated_at = now
    RunRepository(at.session).add_wait(
        AutomationRunWait(
            run_pk=run.id,
            environment_id=run.environment_id,
            recipient=outcome.recipient[:300],
            source=outcome.source,
            event=outcome.event,
            position=run.step_index,
            match_fields=match_fields(list(outcome.match)),
            match_key=match_key(outcome.match),
            created_at=now,
        )
    )
    at.outbox.add_run(run.id, outcome.until)
    return RunStatus.WAITING_FOR_EVENT


def _program(run: AutomationRun) -> tuple[Instruction, ...]:
    """The run's steps as one flat program (`steps.branch.program`): `step_index` is a
    position in it."""
    return program((run.definition or {}).get("steps", []))


def _instruction(run: AutomationRun) -> Instruction:
    return _program(run)[run.step_index]


def _next(run: AutomationRun) -> str:
    """Continue with the next step, or stop here when that was the last one."""
    return _CONTINUE if run.status == RunStatus.PROCESSING else run.status


def _fail(
    context: WorkerContext,
    run_pk: int,
    reason: str,
    *,
    permanent: bool = False,
) -> str:
    """Record a step failure: ERROR when permanent or out of attempts, else retry later."""
    with context.database.write() as (session, outbox):
        repository = RunRepository(session)
        run = repository.get_for_update(run_pk)
        if run is None or run.status not in RunStatus.ACTIVE:
            return run.status if run is not None else "missing"
        now = utcnow()
        row = None
        if run.step_index < len(_program(run)):
            with contextlib.suppress(StepFailed):  # a stored step that does not load has none
                row = _step_row(session, run, steps.load(_instruction(run).step), now)
        if row is not None:
            session.add(row)
            row.error = reason[:2000]
            row.updated_at = now
        run.attempts += 1
        run.error = reason[:2000]
        run.updated_at = now
        if permanent or run.attempts >= context.settings.event_max_attempts:
            run.status = RunStatus.ERROR
            run.finished_at = now
            if row is not None:
                row.status = RunStatus.ERROR
                row.finished_at = now
            webhooks.emit(session, outbox, _failed_event(run))
        else:
            retry_at = now + timedelta(seconds=backoff_seconds(context.settings, run.attempts))
            run.wake_at = retry_at  # the sweeper leaves it alone until then
            outbox.add_run(run_pk, retry_at)
        return run.status


def _failed_event(run: AutomationRun) -> Emission:
    """The `run.failed` outbound webhook event of a run that has just failed."""
    return Emission(
        run.environment_id,
        RUN_FAILED,
        {
            "run_id": run.run_id,
            "automation_id": run.automation_id,
            "status": RunStatus.ERROR,
            "error": run.error,
            "step_index": run.step_index,
            "failed_at": isoformat(run.finished_at),
        },
    )


# ---------------------------------------------------------------------------------------------
# Requests of network steps, between their two transactions


def _fetch(context: WorkerContext, plan: FetchPlan) -> str:
    try:
        fetched = plan.fetch.answers(context.http)
    except StepFailed as exc:
        return _fail(context, plan.run_pk, str(exc), permanent=True)
    except RetryableStepError as exc:
        return _fail(context, plan.run_pk, str(exc))
    with context.database.write() as (session, outbox):
        repository = RunRepository(session)
        run = repository.get_for_update(plan.run_pk)
        if run is None or run.status != RunStatus.PROCESSING or run.step_index != plan.position:
            return run.status if run is not None else "missing"  # canceled meanwhile
        row = repository.step(run.id, plan.position)
        assert row is not None
        now = utcnow()
        at = StepRun(session, context, run, namespace(run.context), outbox, now)
        output = plan.fetch.apply(at, fetched)
        _finish_step(session, run, row, RunStatus.PROCESSED, output, now)
    return _CONTINUE


# ---------------------------------------------------------------------------------------------
# Canceling, reading, sweeping


def get_run(session: Session, scope: Scope, run_id: str) -> AutomationRun:
    return found(
        RunRepository(session).by_run_id(scope.environment_id, run_id), _missing_run(run_id)
    )


def cancel_by_api(
    session: Session, scope: Scope, run_id: str, reason: str = "canceled through the API"
) -> AutomationRun:
    """Cancel an active run on request; `reason` is recorded with it (who asked, and where)."""
    found = get_run(session, scope, run_id)
    run = RunRepository(session).get_for_update(found.id)
    assert run is not None
    if run.status not in RunStatus.ACTIVE:
        raise Conflict(
            f"Run {run_id!r} is {run.status}; only PROCESSING, WAITING or WAITING_FOR_EVENT runs "
            "can be canceled.",
            code="run_not_active",
            field="run_id",
        )
    cancel_run(session, run, reason)
    return run


def retry_by_api(session: Session, scope: Scope, run_id: str, by: str) -> AutomationRun:
    """Run a failed (ERROR) run's failed step again, then the steps after it; `by` (who
    asked, and where) is recorded with the retry. The caller enqueues the run after commit."""
    found = get_run(session, scope, run_id)
    run = RunRepository(session).get_for_update(found.id)
    assert run is not None
    if run.status != RunStatus.ERROR:
        raise Conflict(
            f"Run {run_id!r} is {run.status}; only a run that failed (ERROR) can be retried "
            "from its failed step. "
            + (
                "It is still under way: wait for it to end, or cancel it."
                if run.status in RunStatus.ACTIVE
                else "Start a new run instead (POST /automations/{id}/invoke)."
            ),
            code="run_not_failed",
            field="run_id",
        )
    retry_run(session, run, by)
    return run


def redrive_due_runs(
    context: WorkerContext, stale_before: datetime, unclaimed_since: datetime, limit: int
) -> int:
    """Claim, for a sweep, runs past their wake-up time or PROCESSING with no progress since
    `stale_before`, and advance them again once the claim commits; returns how many."""
    with context.database.write() as (session, outbox):
        claimed = RunRepository(session).claim_due(
            utcnow(), stale_before, unclaimed_since, context.settings, limit
        )
        for run_pk in claimed:
            outbox.add_run(run_pk)
        return len(claimed)
