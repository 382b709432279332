"""The run engine: starting runs, advancing them step by step, canceling them.

A run is a row (`AutomationRun`) with the steps it started with, a context (`data`, `profile`,
`event`, `recipient`, `brand`, `template`, and step outputs under `refs`) and `step_index`, the
next step to run. A job advances a run:

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

Jobs are enqueued only after the commit that makes their work visible: each step adds them
to its unit of work's outbox (`tidings.db.Outbox`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tidings.automation import service as definitions
from tidings.automation.duration import DurationError, parse_duration
from tidings.automation.repository import RunRepository
from tidings.db import Outbox
from tidings.errors import AppError, Conflict, NotFound
from tidings.jobs.context import WorkerContext
from tidings.kit.expression import ExpressionError, compile_expression, truthy
from tidings.kit.ids import new_id
from tidings.kit.jsondoc import diff
from tidings.kit.outbound import OutboundGuard, OutboundRefused
from tidings.kit.time import LATEST, isoformat, parse_timestamp, shifted, utcnow
from tidings.message.pipeline import backoff_seconds
from tidings.message.recipients import expand
from tidings.message.repository import IdempotencyRepository
from tidings.message.schemas import MessageSpec
from tidings.message.service import AcceptedMessage, accept_send, request_hash
from tidings.models import AutomationRun, AutomationRunStep, Event, RunStatus
from tidings.profile.repository import ProfileRepository
from tidings.template.render import render_with
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

# Steps a job runs before handing the run to a new job, so one long run can't hog a worker.
STEPS_PER_JOB = 50
# invoke → invoke → … deeper than this is a loop in the definitions.
MAX_INVOKE_DEPTH = 10
# A send-list data source makes one request per subscriber, before the send.
MAX_DATA_SOURCE_RECIPIENTS = 1000
MERGE_STRATEGIES = ("replace", "soft-merge", "overwrite", "none")
# Fields whose strings are message templates: the message renderer fills them in, per channel.
_TEMPLATE_FIELDS = ("content",)
_PATH_PART = re.compile(r"\.?([A-Za-z0-9_$-]+)|\[(\d+)\]")


class StepFailed(Exception):
    """The step cannot succeed as written (a missing template, no recipient): the run ends ERROR."""


class RetryableStepError(Exception):
    """The step may succeed later (a fetch-data server that is down): the run retries it."""


# ---------------------------------------------------------------------------------------------
# Values: $ref, Liquid and conditions


def namespace(context: dict[str, Any]) -> dict[str, Any]:
    """What `if`, `$ref` and Liquid see: data, profile, event, recipient, brand, template, refs.

    `refs` holds the step outputs by their `ref`, and also data, profile and recipient, so
    Courier's `refs.data.x` works as well as `data.x`.
    """
    base = {
        "data": context.get("data") or {},
        "profile": context.get("profile") or {},
        "event": context.get("event") or {},
        "recipient": context.get("recipient"),
        "brand": context.get("brand"),
        "template": context.get("template"),
    }
    refs = dict(context.get("refs") or {})
    refs.update(
        data=base["data"],
        profile=base["profile"],
        recipient=base["recipient"],
        brand=base["brand"],
        template=base["template"],
    )
    return {**base, "refs": refs}


def lookup(names: dict[str, Any], path: str) -> Any:
    """The value at a dotted path such as `data.items[0].sku`; None when any part is missing."""
    value: Any = names
    for match in _PATH_PART.finditer(path):
        key, index = match.group(1), match.group(2)
        if index is not None:
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
        elif isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key == "length":
            value = len(value)
        else:
            value = None
        if value is None:
            return None
    return value


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$ref"} and isinstance(value["$ref"], str)


def resolve(value: Any, names: dict[str, Any]) -> Any:
    """Replace each `{"$ref": path}` by its value and render each Liquid string."""
    if _is_ref(value):
        return lookup(names, value["$ref"])
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return render_with(value, names)
        return value
    if isinstance(value, dict):
        return {
            key: item if key in _TEMPLATE_FIELDS else resolve(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    return value


def _text(value: Any, names: dict[str, Any]) -> str | None:
    resolved = resolve(value, names)
    if resolved is None:
        return None
    text = str(resolved).strip()
    return text or None


def cancelation_token(expression: str | None, names: dict[str, Any]) -> str | None:
    """The run's token: a Liquid expression, or a bare path as Courier writes it (refs.data.x)."""
    if not expression:
        return None
    if "{{" not in expression and "{%" not in expression:
        value = lookup(names, expression.strip())
        return None if value is None else str(value)[:500] or None
    return (_text(expression, names) or "")[:500] or None


def merge(strategy: str, current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Courier's merge strategies for fetch-data, send-list data sources and update-profile."""
    if strategy == "replace":
        return dict(incoming)
    if strategy == "soft-merge":
        return {**incoming, **current}
    if strategy == "overwrite":
        return {**current, **incoming}
    return dict(current) if current else dict(incoming)


# ---------------------------------------------------------------------------------------------
# Starting runs


def _scope(run: AutomationRun | Event) -> Scope:
    return Scope(run.workspace_id, run.environment_id, "", "")


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
    stored: dict[str, Any] = {}
    if recipient:
        row = ProfileRepository(session).get(Scope(workspace_id, environment_id, "", ""), recipient)
        stored = dict(row.data) if row is not None else {}
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
    now = utcnow()
    steps = definition["steps"]
    run = AutomationRun(
        run_id=new_id("run"),
        workspace_id=workspace_id,
        environment_id=environment_id,
        automation_id=automation_id,
        version_pk=version_pk,
        definition={
            "steps": steps,
            "cancelation_token": definition.get("cancelation_token"),
        },
        source=source[:400],
        event_pk=event_pk,
        parent_run_id=parent.run_id if parent is not None else None,
        recipient=recipient,
        cancelation_token=cancelation_token(
            definition.get("cancelation_token"), namespace(context)
        ),
        status=RunStatus.PROCESSING,
        step_index=0,
        step_count=len(steps),
        context=context,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    return RunRepository(session).add(run)


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
            start_run(
                session,
                workspace_id=event.workspace_id,
                environment_id=event.environment_id,
                definition=version.definition,
                source=f"{source}/{name}",
                automation_id=automation.automation_id,
                version_pk=version.id,
                # An anonymous visitor's events go to its anonymous profile.
                recipient=event.user_id or event.anonymous_id,
                data=event_data(event),
                event=event.payload,
                event_pk=event.id,
            )
        )
    return runs


def invoke(
    session: Session,
    scope: Scope,
    automation_id: str,
    body: dict[str, Any],
) -> AutomationRun:
    """`POST /automations/{id}/invoke`: a run of the current version, enabled or not."""
    automation, version = definitions.get(session, scope, automation_id)
    return start_run(
        session,
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        definition=version.definition,
        source=f"invoke/{automation.automation_id}",
        automation_id=automation.automation_id,
        version_pk=version.id,
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
class FetchCall:
    """One HTTP request of a fetch-data step, or of a send-list data source (per recipient)."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    body: Any
    user_id: str | None = None


@dataclass(frozen=True)
class FetchPlan:
    """Requests prepared in one transaction, made outside any, and applied in another."""

    run_pk: int
    position: int
    action: str
    calls: list[FetchCall]
    merge_strategy: str
    message: dict[str, Any] | None = None


_CONTINUE = "continue"
# Steps that call the network between two transactions (their row is committed first).
_IO_ACTIONS = ("fetch-data", "send-list")


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


def _step_row(session: Session, run: AutomationRun, step: dict[str, Any]) -> AutomationRunStep:
    """The step's row. A new one joins the session at once only for a step that can be
    seen unfinished (a fetch between its transactions, a delay); any other step starts and
    ends in one transaction, so its row is added when it ends (`_finish_step`): one
    INSERT rather than an INSERT and an UPDATE."""
    # A step's row exists before its own transaction only after a failed attempt (which
    # counts in `attempts`) or a fetch's first transaction; otherwise it would have been
    # rolled back with the step, and there is nothing to look up.
    row = None
    if run.attempts or step["action"] in _IO_ACTIONS:
        row = RunRepository(session).step(run.id, run.step_index)
    if row is None:
        now = utcnow()
        row = AutomationRunStep(
            run_pk=run.id,
            position=run.step_index,
            action=step["action"],
            ref=step.get("ref"),
            status=RunStatus.PROCESSING,
            started_at=now,
            updated_at=now,
        )
        if step["action"] in _IO_ACTIONS or step["action"] == "delay":
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
    run.step_index += 1
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
    repository = RunRepository(session)
    if run.status not in RunStatus.ACTIVE:
        return run.status
    now = utcnow()
    run.owner = None  # a request an earlier advance made is over, or was abandoned
    if run.status == RunStatus.WAITING:
        if run.wake_at is not None and run.wake_at > now:
            return run.status  # early: the job scheduled for wake_at (or the sweeper) comes back
        row = repository.step(run.id, run.step_index)
        run.status = RunStatus.PROCESSING
        run.wake_at = None
        if row is not None:
            _finish_step(session, run, row, RunStatus.PROCESSED, row.output, now)
        else:
            run.step_index += 1
        return _next(run)
    steps: list[dict[str, Any]] = (run.definition or {}).get("steps", [])
    if run.step_index >= len(steps):
        run.status = RunStatus.PROCESSED
        run.finished_at = run.updated_at = now
        return run.status
    step = steps[run.step_index]
    row = _step_row(session, run, step)
    names = namespace(run.context)
    if "if" in step:
        try:
            passed = truthy(compile_expression(step["if"])(names))
        except ExpressionError as exc:
            raise StepFailed(f"the `if` of step {run.step_index} does not parse: {exc}") from exc
        if not passed:
            _finish_step(session, run, row, RunStatus.SKIPPED, None, now)
            return _next(run)
    action = step["action"]
    if action == "fetch-data" or (action == "send-list" and "data_source" in step):
        # The request runs after this commits: the run is this process's until the result
        # is applied, so that the sweeper leaves it alone while the process lives.
        run.owner = context.owner
        run.updated_at = now
        session.flush()
        if action == "fetch-data":
            return _fetch_plan(run, step, names)
        return _data_source_plan(session, run, step, names)
    if action == "delay":
        until = _wake_time(step, names, now)
        if until > now:
            row.status = RunStatus.WAITING
            row.output = {"until": isoformat(until)}
            row.updated_at = now
            run.status = RunStatus.WAITING
            run.wake_at = until
            run.updated_at = now
            outbox.add_run(run.id, until)
            return RunStatus.WAITING
        _finish_step(session, run, row, RunStatus.PROCESSED, {"until": isoformat(until)}, now)
        return _next(run)
    output = STEP_ACTIONS[action](session, context, run, step, names, outbox)
    _finish_step(session, run, row, RunStatus.PROCESSED, output, now)
    return _next(run)


def _next(run: AutomationRun) -> str:
    """Continue with the next step, or stop here when that was the last one."""
    return _CONTINUE if run.status == RunStatus.PROCESSING else run.status


def _wake_time(step: dict[str, Any], names: dict[str, Any], now: datetime) -> datetime:
    if "duration" in step:
        try:
            wake_at = shifted(now, parse_duration(step["duration"]))
        except DurationError as exc:
            raise StepFailed(str(exc)) from exc
        if wake_at is None:
            raise StepFailed(f"delay.duration {step['duration']!r} ends after the year {LATEST:%Y}")
        return wake_at
    text = _text(step["until"], names)
    until = parse_timestamp(text)
    if until is None:
        raise StepFailed(
            f"delay.until became {text!r}, which is not an ISO-8601 time such as "
            "2030-01-31T09:00:00Z"
        )
    return until


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
        steps = (run.definition or {}).get("steps", [])
        row = None
        if run.step_index < len(steps):
            row = _step_row(session, run, steps[run.step_index])
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
        else:
            retry_at = now + timedelta(seconds=backoff_seconds(context.settings, run.attempts))
            run.wake_at = retry_at  # the sweeper leaves it alone until then
            outbox.add_run(run_pk, retry_at)
        return run.status


# ---------------------------------------------------------------------------------------------
# fetch-data


def _call(
    webhook: Any, names: dict[str, Any], idempotency_key: Any, user_id: str | None = None
) -> FetchCall:
    webhook = resolve(webhook, names)
    headers = {str(key): str(value) for key, value in (webhook.get("headers") or {}).items()}
    if idempotency_key:
        key = _text(idempotency_key, names)
        if key:
            headers.setdefault("Idempotency-Key", key)
    url = str(webhook.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise StepFailed(f"the webhook url became {url!r}, which is not an http(s) URL")
    return FetchCall(
        method=webhook.get("method", "GET"),
        url=url,
        headers=headers,
        params={str(key): str(value) for key, value in (webhook.get("params") or {}).items()},
        body=webhook.get("body"),
        user_id=user_id,
    )


def _fetch_plan(run: AutomationRun, step: dict[str, Any], names: dict[str, Any]) -> FetchPlan:
    return FetchPlan(
        run_pk=run.id,
        position=run.step_index,
        action="fetch-data",
        calls=[_call(step["webhook"], names, step.get("idempotency_key"))],
        merge_strategy=step.get("merge_strategy", "soft-merge"),
    )


def _data_source_plan(
    session: Session, run: AutomationRun, step: dict[str, Any], names: dict[str, Any]
) -> FetchPlan:
    """send-list with a data_source: one request per list member, each seeing its `recipient`."""
    message = _message_body(step, names)
    list_id = _text(step["list"], names) or ""
    try:
        members = expand(session, run.environment_id, {"list_id": list_id})
    except AppError as exc:
        raise StepFailed(exc.message) from exc
    if len(members) > MAX_DATA_SOURCE_RECIPIENTS:
        raise StepFailed(
            f"send-list: list {list_id!r} has {len(members)} subscribers; a data_source fetches "
            f"per subscriber and is limited to {MAX_DATA_SOURCE_RECIPIENTS}"
        )
    source = step["data_source"]
    calls = [
        _call(source["webhook"], {**names, "recipient": member.user_id}, None, member.user_id)
        for member in members
    ]
    return FetchPlan(
        run_pk=run.id,
        position=run.step_index,
        action="send-list",
        calls=calls,
        merge_strategy=source.get("merge_strategy", "soft-merge"),
        message=message,
    )


def _request(http: httpx.Client, plan: FetchCall) -> dict[str, Any]:
    """The response object; RetryableStepError or StepFailed otherwise."""
    try:
        body = plan.body if plan.method != "GET" else None
        response = http.request(
            plan.method,
            plan.url,
            headers=plan.headers,
            params=plan.params or None,
            # A string body (as Courier's SDK types it) is sent as is; anything else as JSON.
            content=body if isinstance(body, str) else None,
            json=body if body is not None and not isinstance(body, str) else None,
        )
    except OutboundRefused as exc:
        raise StepFailed(f"fetch-data: {plan.method} {plan.url} was refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RetryableStepError(f"fetch-data: {plan.method} {plan.url} failed: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryableStepError(
            f"fetch-data: {plan.method} {plan.url} answered {response.status_code}"
        )
    if response.status_code >= 400:
        raise StepFailed(
            f"fetch-data: {plan.method} {plan.url} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError as exc:
        raise StepFailed(
            f"fetch-data: {plan.url} answered {response.headers.get('content-type')!r}, not "
            "a JSON object to merge into data"
        ) from exc
    if not isinstance(body, dict):
        raise StepFailed(f"fetch-data: {plan.url} answered JSON that is not an object")
    return body


def _fetch(context: WorkerContext, plan: FetchPlan) -> str:
    try:
        results = [(call.user_id, _request(context.http, call)) for call in plan.calls]
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
        if plan.action == "fetch-data":
            ((_, output),) = results
            run_context = dict(run.context)
            data = run_context.get("data") or {}
            run_context["data"] = merge(plan.merge_strategy, data, output)
            run.context = run_context
        else:
            output = _send_to_fetched(session, context, run, plan, results, outbox)
        _finish_step(session, run, row, RunStatus.PROCESSED, output, utcnow())
    return _CONTINUE


def _send_to_fetched(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    plan: FetchPlan,
    results: list[tuple[str | None, dict[str, Any]]],
    outbox: Outbox,
) -> dict[str, Any]:
    """A send-list message whose every recipient has its own data (base data merged with what
    its data source answered)."""
    if not results:
        return {"recipients": 0}
    body = dict(plan.message or {})
    base = body.pop("data", None) or {}
    body["data"] = {}
    body["to"] = [
        {"user_id": user_id, "data": merge(plan.merge_strategy, base, fetched)}
        for user_id, fetched in results
    ]
    return _accept(session, context, run, body, outbox, None)


# ---------------------------------------------------------------------------------------------
# The other steps: each runs inside the run's transaction and returns its output.


def _send_output(request_id: str, messages: Sequence[AcceptedMessage]) -> dict[str, Any]:
    output: dict[str, Any] = {"requestId": request_id}
    if len(messages) == 1:
        output["messageId"] = messages[0].message_id
    else:
        output["messageIds"] = [message.message_id for message in messages]
    return output


def _accept(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    body: dict[str, Any],
    outbox: Outbox,
    idempotency_key: str | None,
) -> dict[str, Any]:
    scope = _scope(run)
    if idempotency_key:
        body_hash = request_hash(body)
        record = IdempotencyRepository(session).get(run.environment_id, idempotency_key)
        if record is not None and record.expires_at > utcnow():
            return {**record.body, "replayed": True}
    try:
        spec = MessageSpec.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise StepFailed(f"the message is not valid at {where}: {error['msg']}") from exc
    try:
        request_id, messages = accept_send(
            session,
            scope,
            spec,
            message_timeout=timedelta(seconds=context.settings.message_timeout_seconds),
            source={
                "type": "automation",
                "automation_id": run.automation_id,
                "run_id": run.run_id,
                "step": run.step_index,
            },
        )
    except AppError as exc:
        raise StepFailed(exc.message) from exc
    outbox.add_messages(messages, run.environment_id)
    output = _send_output(request_id, messages)
    if idempotency_key:
        IdempotencyRepository(session).claim(
            run.environment_id,
            idempotency_key,
            body_hash,
            202,
            output,
            utcnow() + timedelta(seconds=context.settings.idempotency_ttl_seconds),
        )
    return output


def _message_body(step: dict[str, Any], names: dict[str, Any]) -> dict[str, Any]:
    """The Send API message a send or send-list step makes, before its `to`."""
    message = resolve(step.get("message") or {}, names)
    body: dict[str, Any] = dict(message) if isinstance(message, dict) else {}
    for key in ("template", "content"):
        if key in step:
            body[key] = resolve(step[key], names) if key == "template" else step[key]
    step_data = resolve(step["data"], names) if "data" in step else {}
    if not isinstance(step_data, dict):
        raise StepFailed("the step's data must be an object")
    body["data"] = {**names["data"], **step_data, **(body.get("data") or {})}
    if step.get("brand"):
        body.setdefault("brand_id", _text(step["brand"], names))
    override = resolve(step.get("override"), names)
    if isinstance(override, dict):
        body.update(override)
    return body


def _send(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    step: dict[str, Any],
    names: dict[str, Any],
    outbox: Outbox,
) -> dict[str, Any]:
    body = _message_body(step, names)
    if "to" not in body:
        recipient = _text(step["recipient"], names) if "recipient" in step else run.recipient
        to: dict[str, Any] = {"user_id": recipient} if recipient else {}
        if recipient == run.recipient:
            to.update(run.context.get("profile_overrides") or {})
        profile = resolve(step.get("profile"), names)
        if isinstance(profile, dict):
            to.update({key: value for key, value in profile.items() if value is not None})
        if not to:
            raise StepFailed(
                "this send step has no recipient: the run has no user (the event had no "
                'userId); give the step a "recipient" or a "message.to"'
            )
        body["to"] = to
    key = _text(step["idempotency_key"], names) if "idempotency_key" in step else None
    return _accept(session, context, run, body, outbox, key)


def _send_list(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    step: dict[str, Any],
    names: dict[str, Any],
    outbox: Outbox,
) -> dict[str, Any]:
    body = _message_body(step, names)
    list_id = _text(step["list"], names)
    if not list_id:
        raise StepFailed("send-list: the list id became empty")
    body["to"] = {"list_id": list_id}
    return _accept(session, context, run, body, outbox, None)


def _update_profile(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    step: dict[str, Any],
    names: dict[str, Any],
    outbox: Outbox,
) -> dict[str, Any]:
    user_id = _text(step["recipient_id"], names) if "recipient_id" in step else run.recipient
    if not user_id:
        raise StepFailed(
            'update-profile has no user: give "recipient_id", or start the run with a recipient'
        )
    patch = resolve(step["profile"], names)
    if not isinstance(patch, dict):
        raise StepFailed("update-profile: the profile must be an object")
    repository = ProfileRepository(session)
    profile, _ = repository.get_or_create_for_update(_scope(run), user_id)
    before = dict(profile.data)
    after = merge(step.get("merge", "soft-merge"), before, patch)
    repository.save(profile, after)
    if user_id == run.recipient:
        run_context = dict(run.context)
        run_context["profile"] = after
        run.context = run_context
    return {"recipient_id": user_id, "merge": step.get("merge"), "diff": diff(before, after)}


def _cancel(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    step: dict[str, Any],
    names: dict[str, Any],
    outbox: Outbox,
) -> dict[str, Any]:
    token = cancelation_token(step["cancelation_token"], names)
    if not token:
        return {"cancelation_token": None, "canceled": []}
    canceled = []
    for other in RunRepository(session).active_with_token(run.environment_id, token, run.id):
        cancel_run(session, other, f"canceled by run {run.run_id}")
        canceled.append(other.run_id)
    return {"cancelation_token": token, "canceled": canceled}


def _invoke(
    session: Session,
    context: WorkerContext,
    run: AutomationRun,
    step: dict[str, Any],
    names: dict[str, Any],
    outbox: Outbox,
) -> dict[str, Any]:
    if run.context.get("depth", 0) >= MAX_INVOKE_DEPTH:
        raise StepFailed(
            f"invoke: runs invoking runs went {MAX_INVOKE_DEPTH} deep; the automations "
            "probably invoke each other in a loop"
        )
    target = _text(step["template"], names) or ""
    version = definitions.current_version(session, run.environment_id, target)
    if version is None:
        raise StepFailed(f"invoke: there is no automation {target!r}")
    data = resolve(step["data"], names) if "data" in step else names["data"]
    profile = resolve(step.get("profile"), names)
    child = start_run(
        session,
        workspace_id=run.workspace_id,
        environment_id=run.environment_id,
        definition=version.definition,
        source=f"invoke/{run.run_id}",
        automation_id=target,
        version_pk=version.id,
        recipient=_text(step["recipient"], names) if "recipient" in step else run.recipient,
        data=data if isinstance(data, dict) else {},
        profile=profile if isinstance(profile, dict) else None,
        event=run.context.get("event"),
        brand=_text(step["brand"], names) if "brand" in step else run.context.get("brand"),
        parent=run,
    )
    outbox.add_run(child.id)
    return {"runId": child.run_id, "automation": target}


STEP_ACTIONS = {
    "send": _send,
    "send-list": _send_list,
    "update-profile": _update_profile,
    "cancel": _cancel,
    "invoke": _invoke,
}


# ---------------------------------------------------------------------------------------------
# Canceling, reading, sweeping


def cancel_run(session: Session, run: AutomationRun, reason: str) -> None:
    now = utcnow()
    row = RunRepository(session).step(run.id, run.step_index)
    if row is not None and row.finished_at is None:
        row.status = RunStatus.CANCELED
        row.finished_at = row.updated_at = now
    run.status = RunStatus.CANCELED
    run.wake_at = None
    run.error = reason
    run.finished_at = run.updated_at = now


def get_run(session: Session, scope: Scope, run_id: str) -> AutomationRun:
    run = RunRepository(session).by_run_id(scope.environment_id, run_id)
    if run is None:
        raise NotFound(
            f"No automation run {run_id!r} in this environment. GET /automations/runs lists "
            "the runs.",
            code="run_not_found",
            field="run_id",
        )
    return run


def cancel_by_api(session: Session, scope: Scope, run_id: str) -> AutomationRun:
    found = get_run(session, scope, run_id)
    run = RunRepository(session).get_for_update(found.id)
    assert run is not None
    if run.status not in RunStatus.ACTIVE:
        raise Conflict(
            f"Run {run_id!r} is {run.status}; only PROCESSING or WAITING runs can be canceled.",
            code="run_not_active",
            field="run_id",
        )
    cancel_run(session, run, "canceled through the API")
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
