"""Automation rules: validating a definition, saving it as an immutable version, reading it.

A definition is stored normalized (defaults filled in) as the `definition` of an
`AutomationVersion`. Saving a definition equal to the current one keeps the version; any
change adds version N+1. The run engine starts a run from `current_version` (or from
`triggered_by` for an event) and keeps the `AutomationVersion` it got, whatever is saved later.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Literal

from sqlalchemy.orm import Session

from tidings.automation.duration import DurationError, parse_duration
from tidings.automation.repository import TRIGGERED_CACHE, AutomationRepository
from tidings.errors import BadRequest, NotFound
from tidings.kit.expression import ExpressionError, compile_expression
from tidings.kit.outbound import OutboundGuard, OutboundRefused
from tidings.kit.time import parse_timestamp, utcnow
from tidings.models import Automation, AutomationVersion
from tidings.template.elemental import ContentError, validate_content
from tidings.template.render import check_syntax
from tidings.workspace.service import Scope

SaveOutcome = Literal["created", "updated", "unchanged"]

MERGE_MODES = ("replace", "soft-merge", "overwrite", "none")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REF_ROOTS = ("data", "profile", "refs", "event", "recipient")
RESERVED_REFS = ("data", "profile", "brand", "template", "recipient", "event")
DEFINITION_FIELDS = ("name", "enabled", "triggers", "cancelation_token", "steps")
MESSAGE_FIELDS = (
    "to",
    "template",
    "content",
    "data",
    "brand_id",
    "routing",
    "channels",
    "providers",
    "timeout",
    "delay",
    "expiry",
    "metadata",
    "preferences",
    "context",
)
WEBHOOK_FIELDS = ("url", "method", "headers", "body", "params")
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "send": (
        "template",
        "content",
        "message",
        "recipient",
        "data",
        "profile",
        "brand",
        "override",
        "idempotency_key",
        "idempotency_expiry",
    ),
    "send-list": ("list", "template", "content", "data", "brand", "override", "data_source"),
    "delay": ("duration", "until"),
    "cancel": ("cancelation_token",),
    "update-profile": ("recipient_id", "profile", "merge"),
    "fetch-data": ("webhook", "merge_strategy", "idempotency_key", "idempotency_expiry"),
    "invoke": ("template", "data", "profile", "recipient", "brand"),
}
COMMON_STEP_FIELDS = ("action", "if", "ref")
MAX_ID_LENGTH = 200
RESERVED_IDS = ("runs", "invoke")

_REF_PATH = re.compile(r"^(?:data|profile|refs|event|recipient)(?:\.[A-Za-z0-9_$-]+|\[\d+\])*$")
_REF_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")


class DefinitionError(BadRequest):
    """A definition failed validation; `field` is the path, e.g. `steps[2].duration`."""

    code = "invalid_automation"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}", field=path)
        self.reason = reason


def _quote(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names)


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "$ref" in value


def _check_ref(value: dict[str, Any], path: str) -> None:
    if set(value) != {"$ref"}:
        raise DefinitionError(
            path, 'a reference object has only the "$ref" key, e.g. {"$ref": "data.email"}'
        )
    target = value["$ref"]
    if not isinstance(target, str) or not _REF_PATH.match(target):
        raise DefinitionError(
            path,
            f"{_quote(target)} is not a valid $ref: use a dotted path starting with "
            f'{_names(REF_ROOTS)}, e.g. {{"$ref": "data.email"}}',
        )


def _check_values(value: Any, path: str) -> None:
    """Every `$ref` inside is a valid path and every string is valid Liquid."""
    if _is_ref(value):
        _check_ref(value, path)
    elif isinstance(value, str):
        error = check_syntax(value)
        if error is not None:
            raise DefinitionError(
                path, f"the Liquid template does not parse: {error.splitlines()[0]}"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]")


def _string(value: Any, path: str) -> None:
    """A non-empty string (Liquid allowed) or a `$ref`."""
    if _is_ref(value):
        return
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(
            path, f'must be a non-empty string or a {{"$ref": …}}, not {_quote(value)}'
        )


def _object(value: Any, path: str) -> None:
    """An object (callers accept a `$ref` first where one may stand for it)."""
    if not isinstance(value, dict):
        raise DefinitionError(path, f"must be an object, not {_quote(value)}")


def _choice(
    step: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str
) -> None:
    value = step.setdefault(key, default)
    if value not in choices:
        raise DefinitionError(f"{path}.{key}", f"{_quote(value)} is not one of {_names(choices)}")


def _content(value: Any, path: str) -> None:
    if _is_ref(value):
        return
    try:
        validate_content(value, path)
    except ContentError as exc:
        raise DefinitionError(exc.path, exc.reason) from exc


def _template_or_content(sources: list[tuple[str, dict[str, Any]]], path: str, what: str) -> None:
    """Exactly one template or content among `(path prefix, object)` pairs."""
    given = [
        (f"{prefix}.{key}", holder[key])
        for prefix, holder in sources
        for key in ("template", "content")
        if key in holder
    ]
    if not given:
        raise DefinitionError(
            path,
            f'{what} needs "template" (a notification id) or "content" ({{title, body}} or '
            "Elemental {version, elements})",
        )
    if len(given) > 1:
        raise DefinitionError(
            given[1][0], f"give either template or content, not both (already have {given[0][0]})"
        )
    where, value = given[0]
    if where.endswith(".template"):
        _string(value, where)
    else:
        _content(value, where)


def _webhook(value: Any, path: str, outbound: OutboundGuard) -> None:
    _object(value, path)
    for key in value:
        if key not in WEBHOOK_FIELDS:
            raise DefinitionError(
                f"{path}.{key}",
                f"{_quote(key)} is not a webhook field; use {_names(WEBHOOK_FIELDS)}",
            )
    if "url" not in value:
        raise DefinitionError(f"{path}.url", "a webhook needs a url")
    _string(value["url"], f"{path}.url")
    url = value["url"]
    if isinstance(url, str) and "{" not in url:
        if not url.startswith(("http://", "https://")):
            raise DefinitionError(f"{path}.url", f"{_quote(url)} is not an http(s) URL")
        # A URL without Liquid is checked now; one built from data when the request is made.
        try:
            outbound.check_url(url)
        except OutboundRefused as exc:
            raise DefinitionError(f"{path}.url", f"{exc}.") from exc
    method = value.setdefault("method", "GET")
    if isinstance(method, str) and method.upper() in HTTP_METHODS:
        value["method"] = method.upper()
    else:
        raise DefinitionError(
            f"{path}.method", f"{_quote(method)} is not one of {_names(HTTP_METHODS)}"
        )
    for key in ("headers", "params"):
        if key in value:
            _object(value[key], f"{path}.{key}")


def _delay(step: dict[str, Any], path: str) -> None:
    if ("duration" in step) == ("until" in step):
        raise DefinitionError(
            path,
            'a delay step needs either "duration" (e.g. "5 minutes") or "until" (an ISO time), '
            "not both",
        )
    if "duration" in step:
        try:
            parse_duration(step["duration"])
        except DurationError as exc:
            raise DefinitionError(f"{path}.duration", str(exc)) from exc
        return
    until = step["until"]
    if _is_ref(until):
        return
    _string(until, f"{path}.until")
    if "{{" not in until and "{%" not in until and parse_timestamp(until) is None:
        raise DefinitionError(
            f"{path}.until",
            f'{_quote(until)} is not an ISO-8601 time (e.g. "2030-01-31T09:00:00Z"), a Liquid '
            'expression such as "{{ data.send_at }}", or a {"$ref": …}',
        )


def _step(raw: Any, path: str, refs: dict[str, str], outbound: OutboundGuard) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "a step must be an object with an `action`")
    step: dict[str, Any] = copy.deepcopy(raw)
    action = step.get("action")
    actions = tuple(STEP_FIELDS)
    if action is None:
        raise DefinitionError(f"{path}.action", f"a step needs an action: one of {_names(actions)}")
    if action not in STEP_FIELDS:
        raise DefinitionError(
            f"{path}.action", f"{_quote(action)} is not a step type; use one of {_names(actions)}"
        )
    allowed = COMMON_STEP_FIELDS + STEP_FIELDS[action]
    for key in step:
        if key not in allowed:
            raise DefinitionError(
                f"{path}.{key}",
                f"{_quote(key)} is not a field of a {action} step; its fields are "
                f"{_names(allowed)}",
            )
    if "if" in step:
        condition = step["if"]
        if not isinstance(condition, str):
            raise DefinitionError(
                f"{path}.if", "must be an expression string, e.g. data.total > 100"
            )
        try:
            compile_expression(condition)
        except ExpressionError as exc:
            raise DefinitionError(f"{path}.if", f"the condition does not parse: {exc}") from exc
    if "ref" in step:
        name = step["ref"]
        if not isinstance(name, str) or not _REF_NAME.match(name):
            raise DefinitionError(
                f"{path}.ref",
                f"{_quote(name)} is not a ref name: use letters, digits, _ and -, starting "
                "with a letter or _",
            )
        if name in RESERVED_REFS:
            raise DefinitionError(
                f"{path}.ref", f"{_quote(name)} is reserved in refs; choose another name"
            )
        if name in refs:
            raise DefinitionError(
                f"{path}.ref", f"{_quote(name)} is already the ref of {refs[name]}; refs are unique"
            )
        refs[name] = path
    _check_step_fields(action, step, path, outbound)
    for key, value in step.items():
        if key not in COMMON_STEP_FIELDS:
            _check_values(value, f"{path}.{key}")
    return step


def _check_step_fields(
    action: str, step: dict[str, Any], path: str, outbound: OutboundGuard
) -> None:
    if action == "send":
        sources = [(path, step)]
        if "message" in step:
            message = step["message"]
            _object(message, f"{path}.message")
            for key in message:
                if key not in MESSAGE_FIELDS:
                    raise DefinitionError(
                        f"{path}.message.{key}",
                        f"{_quote(key)} is not a Send API message field; use "
                        f"{_names(MESSAGE_FIELDS)}",
                    )
            sources.append((f"{path}.message", message))
        _template_or_content(sources, path, "a send step")
        for key in ("recipient", "brand", "idempotency_key"):
            if key in step:
                _string(step[key], f"{path}.{key}")
        for key in ("data", "profile", "override"):
            if key in step and not _is_ref(step[key]):
                _object(step[key], f"{path}.{key}")
    elif action == "send-list":
        if "list" not in step:
            raise DefinitionError(f"{path}.list", "a send-list step needs a list id")
        _string(step["list"], f"{path}.list")
        _template_or_content([(path, step)], path, "a send-list step")
        if "brand" in step:
            _string(step["brand"], f"{path}.brand")
        for key in ("data", "override"):
            if key in step and not _is_ref(step[key]):
                _object(step[key], f"{path}.{key}")
        if "data_source" in step:
            source = step["data_source"]
            where = f"{path}.data_source"
            _object(source, where)
            for key in source:
                if key not in ("webhook", "merge_strategy"):
                    raise DefinitionError(
                        f"{where}.{key}",
                        f"{_quote(key)} is not a data_source field; use webhook, merge_strategy",
                    )
            if "webhook" not in source:
                raise DefinitionError(f"{where}.webhook", "a data_source needs a webhook")
            _webhook(source["webhook"], f"{where}.webhook", outbound)
            _choice(source, "merge_strategy", where, MERGE_MODES, "soft-merge")
    elif action == "delay":
        _delay(step, path)
    elif action == "cancel":
        if "cancelation_token" not in step:
            raise DefinitionError(
                f"{path}.cancelation_token",
                "a cancel step needs the cancelation_token of the runs to cancel",
            )
        _string(step["cancelation_token"], f"{path}.cancelation_token")
    elif action == "update-profile":
        if "recipient_id" in step:
            _string(step["recipient_id"], f"{path}.recipient_id")
        if "profile" not in step:
            raise DefinitionError(
                f"{path}.profile", "an update-profile step needs a profile object"
            )
        if not _is_ref(step["profile"]):
            _object(step["profile"], f"{path}.profile")
        _choice(step, "merge", path, MERGE_MODES, "soft-merge")
    elif action == "fetch-data":
        if "webhook" not in step:
            raise DefinitionError(
                f"{path}.webhook", "a fetch-data step needs a webhook: {url, method}"
            )
        _webhook(step["webhook"], f"{path}.webhook", outbound)
        _choice(step, "merge_strategy", path, MERGE_MODES, "soft-merge")
        if "idempotency_key" in step:
            _string(step["idempotency_key"], f"{path}.idempotency_key")
    elif action == "invoke":
        if "template" not in step:
            raise DefinitionError(
                f"{path}.template", "an invoke step needs template: the id of the automation"
            )
        _string(step["template"], f"{path}.template")
        for key in ("recipient", "brand"):
            if key in step:
                _string(step[key], f"{path}.{key}")
        for key in ("data", "profile"):
            if key in step and not _is_ref(step[key]):
                _object(step[key], f"{path}.{key}")


def _trigger(raw: Any, path: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise DefinitionError(path, 'a trigger is an object: {"source": "segment", "event": …}')
    for key in raw:
        if key not in ("source", "event"):
            raise DefinitionError(
                f"{path}.{key}", f"{_quote(key)} is not a trigger field; use source, event"
            )
    source, event = raw.get("source"), raw.get("event")
    if source not in ("segment", "inbound"):
        raise DefinitionError(f"{path}.source", f"{_quote(source)} is not segment or inbound")
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
                f"{_quote(key)} is not a field of an automation; use {_names(DEFINITION_FIELDS)}",
            )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 300):
        raise DefinitionError("name", "must be a non-empty string of at most 300 characters")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DefinitionError("enabled", f"must be true or false, not {_quote(enabled)}")
    raw_triggers = body.get("triggers", [])
    if not isinstance(raw_triggers, list):
        raise DefinitionError("triggers", "must be a list of {source, event}")
    triggers: list[dict[str, str]] = []
    for index, raw in enumerate(raw_triggers):
        trigger = _trigger(raw, f"triggers[{index}]")
        if trigger in triggers:
            raise DefinitionError(f"triggers[{index}]", "this trigger is already in the list")
        triggers.append(trigger)
    token = body.get("cancelation_token")
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise DefinitionError(
                "cancelation_token", 'must be a Liquid expression such as "{{ data.cart_id }}"'
            )
        _check_values(token, "cancelation_token")
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError(
            "steps", 'needs at least one step, e.g. [{"action": "send", "template": "welcome"}]'
        )
    refs: dict[str, str] = {}
    steps = [_step(raw, f"steps[{index}]", refs, outbound) for index, raw in enumerate(raw_steps)]
    return {
        "name": name if name is not None else automation_id,
        "enabled": enabled,
        "triggers": triggers,
        "cancelation_token": token,
        "steps": steps,
    }


def not_found(automation_id: str) -> NotFound:
    return NotFound(
        f"No automation {automation_id!r} in this environment. Create it with "
        "PUT /automations/{id} or `tidings apply`.",
        code="automation_not_found",
        field="id",
    )


def save(
    session: Session, scope: Scope, automation_id: str, body: Any, *, outbound: OutboundGuard
) -> tuple[Automation, AutomationVersion, SaveOutcome]:
    """Validate and save a definition; a new version only when it differs from the current one."""
    definition = validate_definition(automation_id, body, outbound=outbound)
    repository = AutomationRepository(session)
    now = utcnow()
    automation = repository.get_or_insert_for_update(scope, automation_id, now)
    created = automation.deleted_at is not None
    latest = repository.version(automation, automation.current_version)
    if latest is not None and latest.definition == definition:
        if not created:
            return automation, latest, "unchanged"
        version = latest
    else:
        version = repository.add_version(
            automation, automation.current_version + 1, definition, now
        )
    if created:
        automation.created_at = now
    automation.current_version = version.version
    automation.name = definition["name"]
    automation.enabled = definition["enabled"]
    automation.deleted_at = None
    automation.updated_at = now
    repository.replace_triggers(automation, definition["triggers"])
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
    repository = AutomationRepository(session)
    automation = repository.get(scope, automation_id)
    if automation is None:
        return None
    return repository.version(automation, automation.current_version)


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
    return AutomationRepository(session).enabled_triggers(environment_id, source)


def get_version(
    session: Session, scope: Scope, automation_id: str, number: int
) -> AutomationVersion:
    automation, _ = get(session, scope, automation_id)
    version = AutomationRepository(session).version(automation, number)
    if version is None:
        raise NotFound(
            f"Automation {automation_id!r} has no version {number}; its versions are 1 to "
            f"{automation.current_version}.",
            code="automation_version_not_found",
            field="version",
        )
    return version


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
