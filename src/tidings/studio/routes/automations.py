"""Automations: list, editor (steps as forms or JSON) with errors at the field, enable and
disable."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.automation import references, runs
from tidings.automation import service as automation_service
from tidings.automation.repository import AutomationRepository, RunRepository
from tidings.automation.service import DefinitionError
from tidings.automation.steps import ACTIONS
from tidings.automation.steps.branch import program
from tidings.db import Outbox
from tidings.dependencies import OutboundDep
from tidings.errors import AppError
from tidings.kit.time import utcnow
from tidings.models import Event
from tidings.models.automation import RunStatus
from tidings.replay import service as replay_service
from tidings.replay.repository import ReplayRepository
from tidings.studio import schedule_form, service, step_form
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import ListQuery, empty
from tidings.studio.repository import StudioRepository
from tidings.studio.templating import render
from tidings.studio.trace import messages_of_steps

router = APIRouter()

RUN_STATUSES = (
    RunStatus.PROCESSING,
    RunStatus.WAITING,
    RunStatus.WAITING_FOR_EVENT,
    RunStatus.PROCESSED,
    RunStatus.CANCELED,
    RunStatus.ERROR,
    RunStatus.THROTTLED,
    RunStatus.BATCHED,
)
RUNS_PAGE_SIZE = 100
AUTOMATIONS_PAGE_SIZE = 100
FORM_FIELDS = ("id", "name", "enabled", "triggers", "cancelation_token", "steps")
# The editor shows the steps as forms (one card a step) or as JSON; both edit the same list.
VIEWS = ("form", "json")


def triggers_text(triggers: list[dict[str, Any]]) -> str:
    """The event triggers, one a line (schedule triggers have rows of their own)."""
    return "\n".join(
        trigger["event"]
        if trigger["source"] == "segment"
        else f"{trigger['source']}: {trigger['event']}"
        for trigger in triggers
        if "event" in trigger
    )


def parse_triggers(text: str) -> list[dict[str, str]]:
    """One trigger a line: `track/Order Shipped`, `identify`, or `inbound: name`."""
    triggers = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        source, _, rest = line.partition(":")
        if rest and source.strip() in ("segment", "inbound"):
            triggers.append({"source": source.strip(), "event": rest.strip()})
        else:
            triggers.append({"source": "segment", "event": line})
    return triggers


def field_of(path: str) -> str:
    """The form field a definition error path belongs to, e.g. steps[0].template -> steps."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    return head if head in FORM_FIELDS else "steps"


def _values(automation_id: str, definition: dict[str, Any]) -> dict[str, str]:
    return {
        "id": automation_id,
        "name": str(definition.get("name") or ""),
        "enabled": "on" if definition.get("enabled", True) else "",
        "triggers": triggers_text(definition.get("triggers", [])),
        "cancelation_token": str(definition.get("cancelation_token") or ""),
        "steps": json.dumps(definition.get("steps", []), indent=2, ensure_ascii=False),
    }


def _automations_page(page: Page, status_code: int = 200, flash: str | None = None) -> Response:
    query = ListQuery(page.request, f"{PREFIX}/automations", AUTOMATIONS_PAGE_SIZE)
    with page.database.read() as session:
        repository = AutomationRepository(session)
        listing = query.in_order(
            lambda after_id, limit: repository.page(page.scope, after_id, limit)
        )
        rows = service.with_versions(session, listing.rows)
    if query.errors:
        status_code, rows, listing = 400, [], empty()
    return render(
        page.request,
        "automations.html",
        status_code,
        section="automations",
        rows=rows,
        listing=listing,
        errors=query.errors,
        flash=flash,
    )


@router.get("/automations")
def list_automations(page: Page) -> Response:
    return _automations_page(page)


def _editor(
    page: Page,
    values: dict[str, str],
    *,
    new: bool,
    view: str = "form",
    cards: list[step_form.StepCard] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    flash: str | None = None,
    version: int | None = None,
    invoked_by: list[str] | None = None,
    focus: str = "",
    outline: list[Any] | None = None,
    schedules: list[schedule_form.ScheduleRow] | None = None,
    replay: dict[str, Any] | None = None,
) -> Response:
    """The editor page. In the form view the steps are `cards`; in the JSON view they are
    `values["steps"]`. `focus` is the id of the element studio.js focuses after a swap;
    `outline`, the saved steps, shown as a tree (branches and their arms nested)."""
    with page.database.read() as session:
        pickers = StudioRepository(session).picker_ids(page.scope.environment_id)
    return render(
        page.request,
        "automation_edit.html",
        status_code,
        section="automations",
        values=values,
        new=new,
        view=view,
        cards=cards if cards is not None else [],
        pickers=pickers,
        actions=ACTIONS,
        widgets=step_form.widgets,
        more_open=step_form.more_open,
        field_id=step_form.field_id,
        card_id=step_form.card_id,
        step_label=step_form.step_label,
        errors=errors or {},
        flash=flash,
        version=version,
        invoked_by=invoked_by or [],
        focus=focus,
        outline=outline or [],
        # The schedule triggers, and an empty row to add one.
        schedules=[*(schedules or []), schedule_form.ScheduleRow()],
        replay=replay,
        replay_windows=REPLAY_WINDOWS,
    )


def _view(value: str) -> str:
    return value if value in VIEWS else "form"


def _schedule_rows(form: CheckedForm) -> list[schedule_form.ScheduleRow]:
    return schedule_form.rows_from_form(
        (name, form_text(form, name)) for name, _ in form.multi_items()
    )


def _cards(form: CheckedForm) -> list[step_form.StepCard]:
    return step_form.cards_from_form(
        (name, form_text(form, name)) for name, _ in form.multi_items()
    )


@router.get("/automations/new")
def new_automation(page: Page, trigger: str = "", view: str = "form") -> Response:
    definition: dict[str, Any] = (
        service.prefilled_definition(trigger)
        if trigger
        else {"name": "", "enabled": False, "triggers": [], "steps": []}
    )
    with page.database.read() as session:
        automation_id = (
            service.free_automation_id(session, page.scope, service.suggested_id(trigger))
            if trigger
            else ""
        )
    return _editor(
        page,
        _values(automation_id, definition),
        new=True,
        view=_view(view),
        cards=step_form.cards_of(definition["steps"]),
        schedules=schedule_form.rows_of(definition["triggers"]),
    )


@router.get("/automations/runs")
def list_runs(page: Page) -> Response:
    """Runs, newest first, filtered by the query string's automation (`automation_id`),
    status, recipient and time started (`from`, `to`)."""
    query = ListQuery(page.request, f"{PREFIX}/automations/runs", RUNS_PAGE_SIZE)
    automation_id = query.text("automation_id")
    status = query.choice("status", RUN_STATUSES, "Status")
    recipient = query.text("recipient")
    created_from, created_to = query.time("from", "From"), query.time("to", "To")
    with page.database.read() as session:
        repository = RunRepository(session)
        listing = query.newest_first(
            lambda before_id, after_id, limit: repository.page(
                page.scope.environment_id,
                before_id,
                limit,
                after_id=after_id,
                automation_ids=[automation_id] if automation_id else None,
                statuses=[status] if status else None,
                recipient=recipient,
                created_from=created_from,
                created_to=created_to,
            )
        )
    return query.render("runs.html", listing, section="automations", statuses=RUN_STATUSES)


def _run_page(page: Page, run_id: str, flash: str | None = None) -> Response:
    with page.database.read() as session:
        run = runs.get_run(session, page.scope, run_id)
        steps = list(RunRepository(session).steps(run.id))
        messages = messages_of_steps(session, page.scope, steps)
        event = session.get(Event, run.event_pk) if run.event_pk is not None else None
    # Each step's place in the run's definition (`2, branch 1, step 1`), by position.
    places = {
        position: step_form.step_label(instruction.path)
        for position, instruction in enumerate(program((run.definition or {}).get("steps", [])))
    }
    return render(
        page.request,
        "run.html",
        section="automations",
        run=run,
        steps=steps,
        places=places,
        messages=messages,
        event=event,
        active=run.status in RunStatus.ACTIVE,
        flash=flash,
    )


@router.get("/automations/runs/{run_id}")
def run_detail(run_id: str, page: Page) -> Response:
    """A run and its step timeline."""
    return _run_page(page, run_id)


def _change_run(page: Page, run_id: str, change: Callable[[Session, Outbox], object]) -> Response:
    """`change` the run in one unit of work: back to its page, or its page with the refusal."""
    try:
        with page.database.write() as (session, outbox):
            change(session, outbox)
    except AppError as exc:
        return _run_page(page, run_id, flash=exc.message)
    return see_other(page_path("automations/runs", run_id))


@router.post("/automations/runs/{run_id}/cancel")
def cancel_run(run_id: str, page: Page, form: CheckedForm) -> Response:
    reason = f"canceled in Studio by {page.admin.email}"
    return _change_run(
        page, run_id, lambda session, _: runs.cancel_by_api(session, page.scope, run_id, reason)
    )


@router.post("/automations/runs/{run_id}/retry")
def retry_run(run_id: str, page: Page, form: CheckedForm) -> Response:
    """As POST /automations/runs/{run_id}/retry: the failed step runs again, in a job."""

    def retry(session: Session, outbox: Outbox) -> None:
        run = runs.retry_by_api(session, page.scope, run_id, f"Studio: {page.admin.email}")
        outbox.add_run(run.id)

    return _change_run(page, run_id, retry)


@router.get("/automations/{automation_id}")
def edit_automation(
    automation_id: str, page: Page, saved: str = "", view: str = "form"
) -> Response:
    with page.database.read() as session:
        automation, version = automation_service.get(session, page.scope, automation_id)
        invoked_by = references.automations_invoking(session, page.scope, automation_id)
    return _editor(
        page,
        _values(automation.automation_id, version.definition),
        new=False,
        view=_view(view),
        cards=step_form.cards_of(version.definition["steps"]),
        flash=f"Saved as version {version.version}." if saved else None,
        version=version.version,
        invoked_by=invoked_by,
        outline=version.definition["steps"],
        schedules=schedule_form.rows_of(version.definition["triggers"]),
    )


@router.post("/automations/{automation_id}/delete")
def delete_automation(automation_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /automations/{id}: its triggers stop; runs already started finish."""
    with page.database.write() as (session, _):
        automation_service.delete(session, page.scope, automation_id)
    return see_other(f"{PREFIX}/automations")


@dataclass
class _Draft:
    """The editor's form as posted: its fields, and the definition they make (`body`) or
    the errors that keep them from making one."""

    values: dict[str, str]
    new: bool
    view: str
    cards: list[step_form.StepCard]
    schedules: list[schedule_form.ScheduleRow]
    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def automation_id(self) -> str:
        return self.values["id"].strip()

    def error_of(self, exc: AppError) -> dict[str, str]:
        """A definition's error, on the field of the form that holds its path."""
        path = (exc.field or "steps").removeprefix("definition.")
        is_step = path == "steps" or path.startswith("steps[")
        name = (
            step_form.error_name(path, self.cards)
            if self.view == "form" and is_step
            else field_of(path)
        )
        name = schedule_form.error_name(path, self.schedules) or name
        return {name: exc.message}


def _posted(form: CheckedForm) -> _Draft:
    """The editor's form as posted, its definition not read yet."""
    view = _view(form_text(form, "view"))
    return _Draft(
        values={name: form_text(form, name) for name in FORM_FIELDS},
        new=form_text(form, "new") == "1",
        view=view,
        cards=_cards(form) if view == "form" else [],
        schedules=_schedule_rows(form),
    )


def _json_steps(text: str) -> tuple[Any, str | None]:
    """The steps typed in the JSON view, or why they are not JSON."""
    try:
        return json.loads(text or "[]"), None
    except json.JSONDecodeError as exc:
        return None, f"steps: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"


def _read_draft(form: CheckedForm) -> _Draft:
    """The posted form and the definition it makes, or its errors."""
    draft = _posted(form)
    values = draft.values
    if draft.view == "form":
        steps, draft.errors = step_form.steps_of(draft.cards)
        if draft.errors:
            return draft
    else:
        steps, problem = _json_steps(values["steps"])
        if problem is not None:
            draft.errors = {"steps": problem}
            return draft
    event_triggers = parse_triggers(values["triggers"])
    schedule_triggers, draft.errors = schedule_form.triggers_of(
        draft.schedules, len(event_triggers)
    )
    draft.body = {
        "enabled": values["enabled"] == "on",
        "triggers": [*event_triggers, *schedule_triggers],
        "steps": steps,
    }
    if values["name"].strip():
        draft.body["name"] = values["name"].strip()
    if values["cancelation_token"].strip():
        draft.body["cancelation_token"] = values["cancelation_token"].strip()
    return draft


def _again(
    page: Page,
    draft: _Draft,
    errors: dict[str, str],
    status_code: int,
    replay: dict[str, Any] | None = None,
) -> Response:
    """The editor again, with what was posted."""
    return _editor(
        page,
        draft.values,
        new=draft.new,
        view=draft.view,
        cards=draft.cards,
        errors=errors,
        status_code=status_code,
        schedules=draft.schedules,
        replay=replay,
    )


@router.post("/automations")
def save_automation(page: Page, form: CheckedForm, outbound: OutboundDep) -> Response:
    """Save from either view: the step cards of the form view, or the JSON view's list."""
    draft = _read_draft(form)
    if draft.errors:
        return _again(page, draft, draft.errors, 400)
    automation_id = draft.automation_id
    try:
        with page.database.write() as (session, _):
            exists = automation_service.current_version(session, page.scope, automation_id)
            if draft.new and exists:
                raise DefinitionError("id", f"an automation {automation_id!r} already exists")
            automation_service.save(
                session, page.scope, automation_id, draft.body, outbound=outbound
            )
    except DefinitionError as exc:
        return _again(page, draft, draft.error_of(exc), exc.status_code)
    return see_other(f"{page_path('automations', automation_id)}?saved=1")


# "What would change": the draft in the editor replayed over a recent window (replay/).
REPLAY_WINDOWS = {"1": "the last day", "7": "the last 7 days", "30": "the last 30 days"}
REPLAY_LIMIT = 10_000


def _replay_panel(
    request: Request, automation_id: str, replay: dict[str, Any], status_code: int = 200
) -> Response:
    return render(
        request,
        "_replay.html",
        status_code,
        automation_id=automation_id,
        replay=replay,
    )


@router.post("/automations/{automation_id}/replay")
def replay_draft(
    automation_id: str, page: Page, form: CheckedForm, outbound: OutboundDep
) -> Response:
    """Replay the editor's draft over the chosen window of stored events, without saving it:
    the panel that follows the replay until it is done."""
    draft = _read_draft(form)
    fragment = page.fragment
    days = form_text(form, "replay_window")
    days = days if days in REPLAY_WINDOWS else "7"
    if draft.errors:
        errors = draft.errors
    else:
        now = utcnow()
        request_ = replay_service.ReplayRequest(
            automation_id=automation_id,
            start=now - timedelta(days=int(days)),
            end=now,
            limit=REPLAY_LIMIT,
            definition=draft.body,
        )
        try:
            with page.database.write() as (session, outbox):
                replay = replay_service.start(session, outbox, page.scope, request_, outbound)
                view = replay_service.view(replay)
        except AppError as exc:
            errors = draft.error_of(exc) if exc.field else {"replay": exc.message}
        else:
            if fragment:
                return _replay_panel(page.request, automation_id, view, 202)
            return _again(page, draft, {}, 202, replay=view)
    if fragment:
        message = "; ".join(errors.values())
        return _replay_panel(
            page.request, automation_id, {"status": "refused", "error": message}, 400
        )
    return _again(page, draft, errors, 400)


@router.get("/automations/{automation_id}/replays/{replay_id}")
def replay_status(automation_id: str, replay_id: str, page: Page) -> Response:
    """A replay's panel (what htmx polls while it runs), or, as a page, the panel and the
    events that would change."""
    fragment = page.fragment
    with page.database.read() as session:
        replay = replay_service.get(session, page.scope, automation_id, replay_id)
        view = replay_service.view(replay)
        # The panel alone (polled every second) needs no events.
        changed = (
            []
            if fragment
            else [
                replay_service.event_view(row)
                for row in ReplayRepository(session).events_page(
                    replay.id, ("added", "removed", "changed"), None, 50
                )
            ]
        )
    if fragment:
        return _replay_panel(page.request, automation_id, view)
    return render(
        page.request,
        "replay.html",
        section="automations",
        automation_id=automation_id,
        replay=view,
        changed=changed,
    )


@router.post("/automations/editor")
def edit_steps(page: Page, form: CheckedForm) -> Response:
    """The editor again, unsaved, after an operation (`op`) on its steps: switch the view
    (`view:json` turns the cards into JSON, `view:form` the JSON into cards), or, in the form
    view, `add` a step of the type `add_action`, `remove:N`, `up:N`, `down:N`. Without
    JavaScript the buttons post here and get the whole page; htmx swaps the editor alone."""
    draft = _posted(form)
    values, new, view, cards = draft.values, draft.new, draft.view, draft.cards
    operation = form_text(form, "op")
    errors: dict[str, str] = {}
    if operation == "view:json" and view == "form":
        steps, errors = step_form.steps_of(cards)
        if not errors:
            values["steps"], view = step_form.pretty(steps), "json"
    elif operation == "view:form" and view == "json":
        steps, problem = _json_steps(values["steps"])
        if problem is not None:
            errors["steps"] = f"{problem}; fix it to show the steps as forms"
        elif isinstance(steps, list):
            cards, view = step_form.cards_of(steps), "form"
        else:
            errors["steps"] = "steps: must be a JSON list of steps to show them as forms"
    elif view == "form":
        adding = {
            name: form_text(form, name)
            for name, _ in form.multi_items()
            if name.startswith("add_action")  # `add_action`, or `add_action@<list>` in a branch
        }
        cards = step_form.apply(cards, operation, adding)
    # A switch that failed (JSON that does not parse) leaves the view as it was.
    done = f"view:{view}" if operation.startswith("view:") else operation
    version, invoked_by = None, []
    if not new:
        automation_id = draft.automation_id
        with page.database.read() as session:
            current = automation_service.current_version(session, page.scope, automation_id)
            if current is not None:
                version = current.version
                invoked_by = references.automations_invoking(session, page.scope, automation_id)
    return _editor(
        page,
        values,
        new=new,
        view=view,
        cards=cards,
        errors=errors,
        version=version,
        invoked_by=invoked_by,
        focus=step_form.focus_after(cards, done),
        schedules=draft.schedules,
    )


@router.post("/automations/{automation_id}/enabled")
def set_enabled(
    automation_id: str, page: Page, form: CheckedForm, outbound: OutboundDep
) -> Response:
    """Enable or disable: saved as a new version through the automation service."""
    try:
        with page.database.write() as (session, _):
            _, version = automation_service.get(session, page.scope, automation_id)
            body = service.editable(version.definition)
            body["enabled"] = form_text(form, "enabled") == "true"
            automation_service.save(session, page.scope, automation_id, body, outbound=outbound)
    except AppError as exc:
        return _automations_page(page, exc.status_code, f"{automation_id}: {exc.message}")
    return see_other(f"{PREFIX}/automations")
