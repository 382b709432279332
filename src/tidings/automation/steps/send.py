"""`send`: one message through the Send API, to the run's recipient by default; with a
`window`, the step waits for the window's next opening when it is closed, and sends then."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import ValidationError, ValidationInfo, model_validator

from tidings.automation.steps.base import Fields, Outcome, Step, StepFailed, StepRun, Wait
from tidings.automation.steps.fields import (
    NOT_NULL,
    OptionalContent,
    OptionalObject,
    OptionalText,
    Value,
    invalid,
    saving,
)
from tidings.automation.steps.values import resolve, text
from tidings.automation.steps.window import OptionalWindow, opening
from tidings.errors import AppError
from tidings.message.idempotency import IdempotentRequest
from tidings.message.schemas import MessageSpec
from tidings.message.service import AcceptedMessage, accept_send


class Message(Fields):
    """A send step's `message`: Send API message fields, laid under the step's own."""

    what = "a Send API message field"

    to: Value = None
    template: OptionalText = None
    content: OptionalContent = None
    data: Value = None
    brand_id: Value = None
    routing: Value = None
    channels: Value = None
    providers: Value = None
    timeout: Value = None
    delay: Value = None
    expiry: Value = None
    metadata: Value = None
    preferences: Value = None
    context: Value = None


class MessageFields(Protocol):
    """The fields of a step that makes a message (send, send-list)."""

    @property
    def template(self) -> Any: ...
    @property
    def content(self) -> Any: ...
    @property
    def data(self) -> Any: ...
    @property
    def brand(self) -> Any: ...
    @property
    def override(self) -> Any: ...


def one_template_or_content(
    holders: list[tuple[str, dict[str, Any]]], what: str, info: ValidationInfo
) -> None:
    """Exactly one template or content among (path below the step, object) pairs, checked
    before the fields themselves: "not both" comes first, whatever the two hold."""
    checks = saving(info)
    if checks is None:
        return
    given = [
        f"{prefix}.{key}"
        for prefix, holder in holders
        for key in ("template", "content")
        if key in holder
    ]
    if not given:
        raise invalid(
            f'{what} needs "template" (a notification id) or "content" ({{title, body}} or '
            "Elemental {version, elements})"
        )
    if len(given) > 1:
        raise invalid(
            f"give either template or content, not both (already have {checks.where}{given[0]})",
            given[1],
        )


def message_body(step: MessageFields, names: dict[str, Any], message: Any = None) -> dict[str, Any]:
    """The Send API message a send or send-list step makes, before its `to`."""
    resolved = resolve(message or {}, names)
    body: dict[str, Any] = dict(resolved) if isinstance(resolved, dict) else {}
    if step.template is not None:
        body["template"] = resolve(step.template, names)
    if step.content is not None:
        body["content"] = step.content
    step_data = resolve(step.data, names) if step.data is not None else {}
    if not isinstance(step_data, dict):
        raise StepFailed("the step's data must be an object")
    body["data"] = {**names["data"], **step_data, **(body.get("data") or {})}
    if step.brand:
        body.setdefault("brand_id", text(step.brand, names))
    override = resolve(step.override, names)
    if isinstance(override, dict):
        body.update(override)
    return body


def _output(request_id: str, messages: Sequence[AcceptedMessage]) -> dict[str, Any]:
    output: dict[str, Any] = {"requestId": request_id}
    if len(messages) == 1:
        output["messageId"] = messages[0].message_id
    else:
        output["messageIds"] = [message.message_id for message in messages]
    return output


def accept(at: StepRun, body: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """Accept the message as `POST /send` would, in the run's transaction. With an
    idempotency key, a repeat of the step replays the first output, whatever its body."""
    run, session, settings = at.run, at.session, at.context.settings
    try:
        idempotent = IdempotentRequest.of(
            run.environment_id, idempotency_key or None, body, settings.idempotency_ttl_seconds
        )
    except AppError as exc:
        raise StepFailed(f"idempotency_key: {exc.message}") from exc
    if idempotent is not None:
        replayed = idempotent.replay(session, refuse_other_body=False)
        if replayed is not None:
            return {**replayed[1], "replayed": True}
    try:
        spec = MessageSpec.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise StepFailed(f"the message is not valid at {where}: {error['msg']}") from exc
    try:
        request_id, messages = accept_send(
            session,
            at.scope,
            spec,
            message_timeout=timedelta(seconds=settings.message_timeout_seconds),
            source={
                "type": "automation",
                "automation_id": run.automation_id,
                "run_id": run.run_id,
                "step": run.step_index,
                "trigger": run.source,
            },
        )
    except AppError as exc:
        raise StepFailed(exc.message) from exc
    at.outbox.add_messages(messages, run.environment_id)
    output = _output(request_id, messages)
    if idempotent is not None:
        idempotent.claim(session, (202, output))
    return output


class Send(Step):
    action: Literal["send"]
    template: OptionalText = None
    content: OptionalContent = None
    message: Annotated[Message | None, NOT_NULL] = None
    recipient: OptionalText = None
    data: OptionalObject = None
    profile: OptionalObject = None
    brand: OptionalText = None
    override: OptionalObject = None
    idempotency_key: OptionalText = None
    idempotency_expiry: Value = None
    window: OptionalWindow = None

    runs_after_wait: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _one_template_or_content(cls, data: dict[str, Any], info: ValidationInfo) -> Any:
        message = data.get("message", {})
        # A message that is no object, or has keys of no message, is refused by its own check.
        if isinstance(message, dict) and message.keys() <= Message.by_key.keys():
            one_template_or_content([("", data), (".message", message)], "a send step", info)
        return data

    def run(self, at: StepRun) -> Outcome:
        if self.window is not None:
            open_at = opening(at, self.window, at.now)
            if open_at > at.now:
                return Wait(open_at)
        body = message_body(self, at.names, self.message.stored() if self.message else None)
        if "to" not in body:
            body["to"] = self._to(at)
        key = text(self.idempotency_key, at.names) if self.idempotency_key is not None else None
        return accept(at, body, key)

    def _to(self, at: StepRun) -> dict[str, Any]:
        run = at.run
        recipient = text(self.recipient, at.names) if self.recipient is not None else run.recipient
        to: dict[str, Any] = {"user_id": recipient} if recipient else {}
        if recipient == run.recipient:
            to.update(run.context.get("profile_overrides") or {})
        profile = resolve(self.profile, at.names)
        if isinstance(profile, dict):
            to.update({key: value for key, value in profile.items() if value is not None})
        if not to:
            raise StepFailed(
                "this send step has no recipient: the run has no user (the event had no "
                'userId); give the step a "recipient" or a "message.to"'
            )
        return to
