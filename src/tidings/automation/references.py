"""What still points at a template or an automation: the live automations whose current
version sends the template, or invokes the automation. Studio names them before a delete.

Only literal ids are found: a step that picks its template with a `$ref` or Liquid decides
at run time, and is not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation.repository import AutomationRepository
from tidings.automation.steps.branch import each_step
from tidings.workspace.service import Scope

PAGE = 100
SENDS = ("send", "send-list")


def _current_definitions(session: Session, scope: Scope) -> Iterator[tuple[str, dict[str, Any]]]:
    repository = AutomationRepository(session)
    after: int | None = None
    while True:
        page = repository.page(scope, after, PAGE)
        for automation in page:
            version = repository.version(automation, automation.current_version)
            if version is not None:
                yield automation.automation_id, version.definition
        if len(page) < PAGE:
            return
        after = page[-1].id


def _steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every step, those nested in branches too."""
    for _, step in each_step(definition.get("steps") or []):
        yield step


def _template_of(step: dict[str, Any]) -> object:
    message = step.get("message")
    if isinstance(message, dict) and "template" in message:
        return message["template"]
    return step.get("template")


def automations_sending(session: Session, scope: Scope, template_id: str) -> list[str]:
    """The live automations with a send or send-list step of this template."""
    return [
        automation_id
        for automation_id, definition in _current_definitions(session, scope)
        if any(
            step.get("action") in SENDS and _template_of(step) == template_id
            for step in _steps(definition)
        )
    ]


def automations_invoking(session: Session, scope: Scope, automation_id: str) -> list[str]:
    """The other live automations with an invoke step of this automation."""
    return [
        invoking
        for invoking, definition in _current_definitions(session, scope)
        if invoking != automation_id
        and any(
            step.get("action") == "invoke" and step.get("template") == automation_id
            for step in _steps(definition)
        )
    ]
