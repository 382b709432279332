"""Everything that happened because of one event, for the event detail page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation.repository import AutomationRepository, RunRepository
from tidings.message import service as message_service
from tidings.message.repository import MessageRepository
from tidings.models import AutomationRun, AutomationRunStep, Event, Message, MessageDelivery
from tidings.workspace.service import Scope


@dataclass
class SentMessage:
    message: Message
    deliveries: list[MessageDelivery]
    history: list[dict[str, Any]]


@dataclass
class StartedRun:
    run: AutomationRun
    steps: list[AutomationRunStep]


@dataclass
class EventTrace:
    mapped_automations: list[str]
    runs: list[StartedRun] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)


def _message_ids(output: dict[str, Any] | None) -> list[str]:
    if not output:
        return []
    ids = output.get("messageIds") or ([output["messageId"]] if output.get("messageId") else [])
    return [str(value) for value in ids]


def sent_message(session: Session, message: Message) -> SentMessage:
    return SentMessage(
        message,
        list(MessageRepository(session).deliveries(message)),
        message_service.history_view(message, session),
    )


def messages_of_steps(
    session: Session, scope: Scope, steps: list[AutomationRunStep]
) -> list[SentMessage]:
    """The messages that a run's send steps created, from the steps' outputs."""
    repository = MessageRepository(session)
    found = []
    for step in steps:
        for message_id in _message_ids(step.output):
            message = repository.get(scope.environment_id, message_id)
            if message is not None:
                found.append(sent_message(session, message))
    return found


def of_event(session: Session, scope: Scope, event: Event) -> EventTrace:
    repository = AutomationRepository(session)
    linked = repository.automations_by_trigger(
        scope.environment_id, event.source, enabled_only=False
    ).get(event.name, [])
    found = EventTrace(mapped_automations=linked)
    runs = RunRepository(session)
    for run in runs.of_events([event.id]):
        steps = list(runs.steps(run.id))
        found.runs.append(StartedRun(run, steps))
        found.messages.extend(messages_of_steps(session, scope, steps))
    return found
