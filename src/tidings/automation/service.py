"""Automation rules: validating a definition, saving it as an immutable version, reading it.

A definition is stored normalized (defaults filled in) as the `definition` of an
`AutomationVersion`. Saving a definition equal to the current one keeps the version; any
change adds version N+1. The run engine starts a run from `current_version` (or from
`triggered_by` for an event) and keeps the `AutomationVersion` it got, whatever is saved later.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, Literal

from sqlalchemy.orm import Session

from tidings.automation import schedules, steps
from tidings.automation.repository import TRIGGERED_CACHE, AutomationRepository
from tidings.automation.steps.branch import MAX_STEPS, count_steps, each_step
from tidings.automation.steps.values import quote as _quote
from tidings.automation.steps.values import value_problem
from tidings.automation.triggers import AUDIENCE, AUDIENCE_MOMENTS
from tidings.errors import BadRequest, NotFound, found, not_in_environment
from tidings.kit.outbound import OutboundGuard
from tidings.kit.time import utcnow
from tidings.models import Automation, AutomationVersion
from tidings.notification.repository import NotificationRepository
from tidings.workspace.service import Scope

SaveOutcome = Literal["created", "updated", "unchanged"]

DEFINITION_FIELDS = ("name", "enabled", "triggers", "cancelation_token", "steps")
MAX_ID_LENGTH = 200
RESERVED_IDS = ("runs", "invoke")


class DefinitionError(BadRequest):
    """A definition failed validation; `field` is the path, e.g. `steps[2].duration`."""

    code = "invalid_automation"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}", field=path)
        self.reason = reason


def _steps(raw_steps: list[Any], outbound: OutboundGuard) -> list[dict[str, Any]]:
    """Each step validated by its model (`tidings.automation.steps`), as stored; refs unique,
    those of steps nested in branches too."""
    stored = []
    for index, raw in enumerate(raw_steps):
        path = f"steps[{index}]"
        try:
            step = steps.check(raw, steps.Saving(outbound, path))
        except steps.InvalidStep as exc:
            raise DefinitionError(path + exc.at, exc.reason) from exc
        stored.append(step.stored())
    count = count_steps(stored)
    if count > MAX_STEPS:
        raise DefinitionError(
            "steps",
            f"an automation holds at most {MAX_STEPS} steps, nested ones included; this one "
            f"has {count}. Move some into an automation of their own and invoke it",
        )
    refs: dict[str, str] = {}
    for path, step_json in each_step(stored):
        ref = step_json.get("ref")
        if ref is not None:
            if ref in refs:
                raise DefinitionError(
                    f"{path}.ref",
                    f"{_quote(ref)} is already the ref of {refs[ref]}; refs are unique",
                )
            refs[ref] = path
    return stored


def _trigger(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DefinitionError(path, 'a trigger is an object: {"source": "segment", "event": …}')
    if raw.get("source") == schedules.SOURCE:
        try:
            return schedules.check_trigger(raw)
        except schedules.ScheduleError as exc:
            raise DefinitionError(path + exc.at, exc.reason) from exc
    if raw.get("source") == AUDIENCE:
        return _audience_trigger(raw, path)
    for key in raw:
        if key not in ("source", "event"):
            raise DefinitionError(
                f"{path}.{key}", f"{_quote(key)} is not a trigger field; use source, event"
            )
    source, event = raw.get("source"), raw.get("event")
    if source not in ("segment", "inbound"):
        raise DefinitionError(
            f"{path}.source", f"{_quote(source)} is not segment, inbound, schedule or audience"
        )
    if not isinstance(event, str) or not event.strip():
        raise DefinitionError(f"{path}.event", "needs a non-empty event name")
    is_track = event.startswith("track/") and bool(event[len("track/") :].strip())
    if source == "segment" and event not in ("identify", "group") and not is_track:
        raise DefinitionError(
            f"{path}.event",
            f"{_quote(event)} is not a Segment trigger: use identify, group or "
            'track/<event name>, e.g. "track/Order Shipped"',
        )
    return {"source": source, "event": event}


def _audience_trigger(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """`{"source": "audience", "audience": "pricing-hot", "on": "enter" | "exit"}`."""
    for key in raw:
        if key not in ("source", "audience", "on"):
            raise DefinitionError(
                f"{path}.{key}",
                f"{_quote(key)} is not a field of an audience trigger; use source, audience, on",
            )
    audience = raw.get("audience")
    if not isinstance(audience, str) or not audience.strip() or len(audience) > 300:
        raise DefinitionError(
            f"{path}.audience",
            f'needs the id of an audience (PUT /audiences/{{id}}), such as "pricing-hot", not '
            f"{_quote(audience)}",
        )
    on = raw.get("on", "enter")
    if on not in AUDIENCE_MOMENTS:
        raise DefinitionError(
            f"{path}.on",
            f"{_quote(on)} is not enter or exit: the run starts when the user enters the "
            "audience, or when the user leaves it",
        )
    return {"source": AUDIENCE, "audience": audience, "on": on}


def _triggers(raw_triggers: Any) -> list[dict[str, Any]]:
    if not isinstance(raw_triggers, list):
        raise DefinitionError("triggers", "must be a list of {source, event}")
    triggers: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_triggers):
        trigger = _trigger(raw, f"triggers[{index}]")
        if trigger in triggers:
            raise DefinitionError(f"triggers[{index}]", "this trigger is already in the list")
        triggers.append(trigger)
    return triggers


def validate_definition(
    automation_id: str, body: Any, *, outbound: OutboundGuard
) -> dict[str, Any]:
    """Check a definition and return it normalized (defaults filled in), ready to store.

    A webhook URL written out (no Liquid) must be a target `outbound` allows.

    Raises DefinitionError (a 400) whose `field` is the path of the first problem, such as
    `steps[2].duration` or `triggers[0].event`.
    """
    if not automation_id or len(automation_id) > MAX_ID_LENGTH:
        raise DefinitionError("id", f"an automation id has 1 to {MAX_ID_LENGTH} characters")
    if automation_id in RESERVED_IDS:
        raise DefinitionError(
            "id", f"{_quote(automation_id)} is a path of the API (/automations/{automation_id})"
        )
    if not isinstance(body, dict):
        raise DefinitionError("body", "the definition must be a JSON object")
    for key in body:
        if key not in DEFINITION_FIELDS:
            raise DefinitionError(
                key,
                f"{_quote(key)} is not a field of an automation; use "
                + ", ".join(DEFINITION_FIELDS),
            )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 300):
        raise DefinitionError("name", "must be a non-empty string of at most 300 characters")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DefinitionError("enabled", f"must be true or false, not {_quote(enabled)}")
    triggers = _triggers(body.get("triggers", []))
    token = body.get("cancelation_token")
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise DefinitionError(
                "cancelation_token", 'must be a Liquid expression such as "{{ data.cart_id }}"'
            )
        problem = value_problem(token)
        if problem is not None:
            raise DefinitionError(f"cancelation_token{problem[0]}", problem[1])
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError(
            "steps", 'needs at least one step, e.g. [{"action": "send", "template": "welcome"}]'
        )
    return {
        "name": name if name is not None else automation_id,
        "enabled": enabled,
        "triggers": triggers,
        "cancelation_token": token,
        "steps": _steps(raw_steps, outbound),
    }


def _literal(value: Any) -> str | None:
    """A reference written out, or None when it is a `$ref` or Liquid (resolved per run)."""
    if not isinstance(value, str) or "{{" in value or "{%" in value:
        return None
    return value


def _references(definition: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """The (path, kind, id) of every template and automation the steps name written out:
    a send's `template` or `message.template` and a send-list's `template` (notification
    templates), an invoke's `template` (an automation)."""
    for path, step in each_step(definition["steps"]):
        action = step["action"]
        holders = [("", step)]
        if action == "send" and isinstance(step.get("message"), dict):
            holders.append((".message", step["message"]))
        for where, holder in holders:
            target = _literal(holder.get("template"))
            if target is None:
                continue
            kind = "automation" if action == "invoke" else "notification"
            yield f"{path}{where}.template", kind, target


def check_references(
    session: Session,
    scope: Scope,
    automation_id: str,
    definition: dict[str, Any],
    *,
    coming: Collection[str] = (),
    current: dict[str, Any] | None = None,
) -> None:
    """Every notification template and automation a definition names must exist in the
    environment; `coming` are automations being saved with this one (`tidings apply`), and
    an automation may invoke itself. A `$ref` or Liquid reference is resolved when the step
    runs and is not checked; a send-list's list is not checked either (subscribing creates
    a list). A reference the `current` definition already has at the same place is not
    checked again: an automation whose template was deleted since can still be disabled.
    Raises DefinitionError naming the step's field, e.g. `steps[1].template`."""
    notifications = NotificationRepository(session)
    automations = AutomationRepository(session)
    known = set(_references(current)) if current is not None else set()
    for path, kind, target in _references(definition):
        if (path, kind, target) in known:
            continue
        if kind == "notification":
            if not notifications.exists(scope, target):
                raise DefinitionError(
                    path,
                    f"there is no notification template {_quote(target)} in this environment; "
                    f"create it first (PUT /notifications/{target}, or in the same "
                    "`tidings apply` files)",
                )
        elif (
            target != automation_id
            and target not in coming
            and automations.get(scope, target) is None
        ):
            raise DefinitionError(
                path,
                f"there is no automation {_quote(target)} to invoke in this environment; "
                f"create it first (PUT /automations/{target}, or in the same "
                "`tidings apply` files)",
            )


not_found = not_in_environment(
    "automation",
    "PUT /automations/{id} or `tidings apply`",
    code="automation_not_found",
    field="id",
)


def save(
    session: Session,
    scope: Scope,
    automation_id: str,
    body: Any,
    *,
    outbound: OutboundGuard,
    coming: Collection[str] = (),
    restored_from: int | None = None,
) -> tuple[Automation, AutomationVersion, SaveOutcome]:
    """Validate and save a definition; a new version only when it differs from the current one.

    The templates and automations it names must exist (`check_references`); `coming` are
    the ids of automations saved with it, which it may invoke. A new version records who
    saved it and, from `restore`, the version it copies."""
    definition = validate_definition(automation_id, body, outbound=outbound)
    repository = AutomationRepository(session)
    now = utcnow()
    automation = repository.get_or_insert_for_update(scope, automation_id, now)
    created = automation.deleted_at is not None
    latest = repository.version(automation, automation.current_version)
    check_references(
        session,
        scope,
        automation_id,
        definition,
        coming=coming,
        current=latest.definition if latest is not None and not created else None,
    )
    if latest is not None and latest.definition == definition:
        if not created:
            return automation, latest, "unchanged"
        version = latest
    else:
        version = repository.add_version(
            automation,
            automation.current_version + 1,
            definition,
            now,
            saved_by=NotificationRepository(session).saved_by(scope),
            restored_from=restored_from,
        )
    if created:
        automation.created_at = now
    automation.current_version = version.version
    automation.name = definition["name"]
    automation.enabled = definition["enabled"]
    automation.deleted_at = None
    automation.updated_at = now
    repository.replace_triggers(automation, definition["triggers"])
    schedules.sync(session, automation, definition["triggers"])
    session.flush()
    return automation, version, "created" if created else "updated"


def get(
    session: Session, scope: Scope | str, automation_id: str
) -> tuple[Automation, AutomationVersion]:
    """The live automation and its current version; NotFound otherwise."""
    repository = AutomationRepository(session)
    automation = repository.get(scope, automation_id)
    if automation is None:
        raise not_found(automation_id)
    version = repository.version(automation, automation.current_version)
    assert version is not None
    return automation, version


def current_version(
    session: Session, scope: Scope | str, automation_id: str
) -> AutomationVersion | None:
    """The version a run started now would use (for invoke steps and the invoke API), or None.

    `scope` may be a Scope or an environment id. Disabled automations are returned too:
    Courier lets the API invoke any template; triggers only fire enabled ones.
    """
    return AutomationRepository(session).current_version(scope, automation_id)


def triggered_by(
    session: Session, environment_id: str, source: str, event: str
) -> list[tuple[Automation, AutomationVersion]]:
    """Enabled automations whose current version has trigger `{source, event}`, oldest first.

    For Segment, `event` is "identify", "group" or "track/<name>" (exact match). Looked up
    once per unit of work: a job processing many events with the same name asks once.
    """
    cache = session.info.setdefault(TRIGGERED_CACHE, {})
    key = (environment_id, source, event)
    found: list[tuple[Automation, AutomationVersion]] | None = cache.get(key)
    if found is None:
        found = cache[key] = AutomationRepository(session).triggered(environment_id, source, event)
    return found


def enabled_triggers(session: Session, environment_id: str, source: str) -> dict[str, list[str]]:
    """Trigger event name → ids of the enabled automations it starts (for event-name views)."""
    return AutomationRepository(session).automations_by_trigger(
        environment_id, source, enabled_only=True
    )


def get_version(
    session: Session, scope: Scope, automation_id: str, number: int
) -> AutomationVersion:
    automation, _ = get(session, scope, automation_id)
    return found(
        AutomationRepository(session).version(automation, number),
        NotFound(
            f"Automation {automation_id!r} has no version {number}; its versions are 1 to "
            f"{automation.current_version}.",
            code="automation_version_not_found",
            field="version",
        ),
    )


def restore(
    session: Session, scope: Scope, automation_id: str, number: int, *, outbound: OutboundGuard
) -> tuple[Automation, AutomationVersion, SaveOutcome]:
    """Save version `number`'s definition as a new version, through `save` and its checks (a
    template it sends that was deleted since is refused); history is never rewritten.
    `unchanged` when the current version already has that definition."""
    version = get_version(session, scope, automation_id, number)
    body = {key: version.definition[key] for key in DEFINITION_FIELDS if key in version.definition}
    return save(session, scope, automation_id, body, outbound=outbound, restored_from=number)


def delete(session: Session, scope: Scope, automation_id: str) -> None:
    """Hide the automation and stop its triggers; versions stay for the runs that use them."""
    repository = AutomationRepository(session)
    automation = repository.get(scope, automation_id)
    if automation is None:
        raise not_found(automation_id)
    now = utcnow()
    automation.deleted_at = now
    automation.updated_at = now
    repository.replace_triggers(automation, [])
    schedules.sync(session, automation, [])
