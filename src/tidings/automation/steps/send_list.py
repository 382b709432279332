"""`send-list`: one message to every subscriber of a list. With a `data_source`, each
subscriber's data is fetched first (one request each, outside any transaction)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, model_validator

from tidings.automation.steps.base import Fetch, Fetched, Fields, Outcome, Step, StepFailed, StepRun
from tidings.automation.steps.fields import (
    NOT_NULL,
    MergeMode,
    Needed,
    OptionalContent,
    OptionalObject,
    OptionalText,
    Text,
)
from tidings.automation.steps.send import accept, message_body, one_template_or_content
from tidings.automation.steps.values import merge, text
from tidings.automation.steps.webhook import Webhook
from tidings.errors import AppError
from tidings.message.recipients import expand

# A data source makes one request per subscriber, before the send.
MAX_DATA_SOURCE_RECIPIENTS = 1000


class DataSource(Fields):
    what = "a data_source field"

    webhook: Annotated[Webhook, Needed("a data_source needs a webhook")]
    merge_strategy: MergeMode = "soft-merge"


class SendList(Step):
    action: Literal["send-list"]
    list_id: Annotated[Text, Needed("a send-list step needs a list id")] = Field(alias="list")
    template: OptionalText = None
    content: OptionalContent = None
    data: OptionalObject = None
    brand: OptionalText = None
    override: OptionalObject = None
    data_source: Annotated[DataSource | None, NOT_NULL] = None

    calls_network: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _one_template_or_content(cls, data: dict[str, Any], info: ValidationInfo) -> Any:
        one_template_or_content([("", data)], "a send-list step", info)
        return data

    def run(self, at: StepRun) -> Outcome:
        body = message_body(self, at.names)
        if self.data_source is not None:
            return self._fetch(at, body, self.data_source)
        list_id = text(self.list_id, at.names)
        if not list_id:
            raise StepFailed("send-list: the list id became empty")
        body["to"] = {"list_id": list_id}
        return accept(at, body, None)

    def _fetch(self, at: StepRun, message: dict[str, Any], source: DataSource) -> Fetch:
        """One request per list member, each seeing its `recipient`."""
        list_id = text(self.list_id, at.names) or ""
        try:
            members = expand(at.session, at.run.environment_id, {"list_id": list_id})
        except AppError as exc:
            raise StepFailed(exc.message) from exc
        if len(members) > MAX_DATA_SOURCE_RECIPIENTS:
            raise StepFailed(
                f"send-list: list {list_id!r} has {len(members)} subscribers; a data_source "
                f"fetches per subscriber and is limited to {MAX_DATA_SOURCE_RECIPIENTS}"
            )
        calls = [
            source.webhook.call({**at.names, "recipient": member.user_id}, None, member.user_id)
            for member in members
        ]
        return Fetch(calls, partial(_send_to_fetched, message, source.merge_strategy))


def _send_to_fetched(
    message: dict[str, Any], strategy: str, at: StepRun, fetched: list[Fetched]
) -> dict[str, Any]:
    """The message, each recipient with its own data: the base data merged with what its
    data source answered."""
    if not fetched:
        return {"recipients": 0}
    body = dict(message)
    base = body.pop("data", None) or {}
    body["data"] = {}
    body["to"] = [
        {"user_id": user_id, "data": merge(strategy, base, answer)} for user_id, answer in fetched
    ]
    return accept(at, body, None)
