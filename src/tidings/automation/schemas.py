"""Wire shapes of automation templates.

The request body is validated by `service.validate_definition`, not by pydantic, so every
error names its exact path (`steps[2].duration`) and says how to fix it. `AutomationBody` is
here to document the shape in the API reference.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.kit.schemas import StrictModel


class Trigger(BaseModel):
    source: Literal["segment", "inbound"]
    event: str = Field(
        description='segment: "identify", "group" or "track/<event name>"; inbound: any name.'
    )


class ScheduleTrigger(BaseModel):
    """Starts the automation at each tick of `cron` in `timezone` (docs/automations.md)."""

    source: Literal["schedule"]
    cron: str = Field(description='Five fields, e.g. "0 9 * * MON" (every Monday at 09:00).')
    timezone: str = Field(default="UTC", description='An IANA zone, e.g. "Europe/Paris".')
    list_id: str | None = Field(default=None, description="One run per subscriber of the list.")
    recipient: str | None = Field(default=None, description="Or one run for this user.")
    data: dict[str, Any] = Field(default_factory=dict, description="The data of each run.")


class AutomationBody(BaseModel):
    """An automation definition, as PUT /automations/{id} and `tidings apply` take it."""

    name: str | None = Field(default=None, description="Defaults to the id.")
    enabled: bool = True
    triggers: list[Trigger | ScheduleTrigger] = Field(default_factory=list)
    cancelation_token: str | None = Field(
        default=None, description="A Liquid expression, e.g. `{{ data.cart_id }}`."
    )
    steps: list[dict[str, Any]] = Field(
        description="Steps with an `action`: send, send-list, delay, cancel, update-profile, "
        "fetch-data or invoke; each may have `if` and `ref`."
    )


class AutomationResponse(BaseModel):
    id: str
    name: str
    enabled: bool
    version: int
    triggers: list[dict[str, Any]]
    cancelation_token: str | None
    steps: list[dict[str, Any]]
    created_at: str
    updated_at: str


class AutomationTemplate(BaseModel):
    """Courier's AutomationTemplate: one saved automation as Courier's SDKs list it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    version: Literal["published", "draft"] = Field(
        description="Always `published`: a saved definition is live at once (no drafts)."
    )
    created_at: str = Field(alias="createdAt", description="ISO 8601.")
    updated_at: str = Field(alias="updatedAt", description="ISO 8601.")


class AutomationList(BaseModel):
    """Courier's list shape (`templates`, `cursor`) beside Tidings' (`results`, `paging`):
    the same page, with the same cursor."""

    templates: list[AutomationTemplate]
    cursor: str | None = Field(
        description="Pass back as `cursor` for the next page; null on the last page."
    )
    paging: dict[str, Any]
    results: list[AutomationResponse]


class VersionResponse(BaseModel):
    id: str
    version: int
    name: str
    enabled: bool
    triggers: list[dict[str, Any]]
    cancelation_token: str | None
    steps: list[dict[str, Any]]
    saved_by: str | None = Field(
        description="The Studio admin's email, the API key id, or `cli` (`tidings apply`); "
        "null when not known (a version saved before this was recorded)."
    )
    restored_from: int | None = Field(
        description="The version this one restored, when it was saved by a restore."
    )
    created_at: str


class VersionList(BaseModel):
    paging: dict[str, Any]
    results: list[VersionResponse]


class InvokeBody(StrictModel):
    """`POST /automations/{id}/invoke`: the run's context."""

    recipient: str | None = Field(default=None, description="The user id the run is for.")
    data: dict[str, Any] = Field(default_factory=dict, description="The run's `data`.")
    profile: dict[str, Any] | None = Field(
        default=None, description="Laid over the recipient's stored profile."
    )
    brand: str | None = None
    template: str | None = None


class AdHocInvokeBody(InvokeBody):
    """`POST /automations/invoke`: steps given inline, validated like a saved definition."""

    automation: dict[str, Any] = Field(
        description='{"steps": [...], "cancelation_token": "{{ data.cart_id }}"}'
    )


class InvokeResponse(BaseModel):
    runId: str


class RunStepView(BaseModel):
    """Courier's AutomationRunStep, plus the step's position, ref, output and error."""

    step_id: str
    action: str
    status: str
    created_at: str = Field(description="When the step started.")
    updated_at: str
    finished_at: str | None
    message_id: str | None = Field(description="The message a send step made (or its request).")
    position: int
    ref: str | None
    output: dict[str, Any] | None
    error: str | None


class RunView(BaseModel):
    """Courier's AutomationRunListItem, plus what Tidings knows of the run."""

    run_id: str
    template_id: str | None = Field(description="The automation; null for an ad hoc run.")
    version: int | None
    status: str
    source: list[str] = Field(
        description='What started the run, e.g. ["segment/track/Order Shipped"]. Diagnostic.'
    )
    recipient: str | None
    cancelation_token: str | None
    event: str | None = Field(description="The messageId of the event that started the run.")
    parent_run_id: str | None
    step_index: int = Field(description="The next step to run (0-based).")
    step_count: int
    wake_at: str | None
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


class RunRetry(BaseModel):
    """A retry of the run after it failed: the failure it set aside, who asked and when."""

    at: str = Field(description="When the run was retried.")
    by: str = Field(description="Who retried it, e.g. `API key key_…` or `Studio: an admin`.")
    position: int = Field(description="The step that had failed and was run again (0-based).")
    action: str | None = Field(description="That step's action.")
    error: str | None = Field(description="Why it had failed.")
    failed_at: str | None = Field(description="When the run had failed.")


class RunDetail(RunView):
    context: dict[str, Any] = Field(
        description="data, profile, event, recipient, brand, template and refs (step outputs)."
    )
    steps: list[RunStepView]
    retries: list[RunRetry] = Field(
        description="Each retry of the run after it failed, oldest first "
        "(POST /automations/runs/{run_id}/retry)."
    )


class RunList(BaseModel):
    """Courier's AutomationRunListResponse."""

    runs: list[RunView]
    next_cursor: str | None = Field(description="Pass back as `cursor`; null on the last page.")


class RunStepList(BaseModel):
    steps: list[RunStepView]
