"""`invoke`: start a run of another automation (its current version), as a child of this one."""

from __future__ import annotations

from typing import Annotated, Literal

from tidings.automation.lifecycle import start_run
from tidings.automation.repository import AutomationRepository
from tidings.automation.steps.base import Outcome, Step, StepFailed, StepRun
from tidings.automation.steps.fields import Needed, OptionalObject, OptionalText, Text
from tidings.automation.steps.values import resolve, text

# invoke → invoke → … deeper than this is a loop in the definitions.
MAX_INVOKE_DEPTH = 10


class Invoke(Step):
    action: Literal["invoke"]
    template: Annotated[Text, Needed("an invoke step needs template: the id of the automation")]
    data: OptionalObject = None
    profile: OptionalObject = None
    recipient: OptionalText = None
    brand: OptionalText = None

    def run(self, at: StepRun) -> Outcome:
        run, names = at.run, at.names
        if run.context.get("depth", 0) >= MAX_INVOKE_DEPTH:
            raise StepFailed(
                f"invoke: runs invoking runs went {MAX_INVOKE_DEPTH} deep; the automations "
                "probably invoke each other in a loop"
            )
        target = text(self.template, names) or ""
        version = AutomationRepository(at.session).current_version(run.environment_id, target)
        if version is None:
            raise StepFailed(f"invoke: there is no automation {target!r}")
        data = resolve(self.data, names) if self.data is not None else names["data"]
        profile = resolve(self.profile, names)
        child = start_run(
            at.session,
            workspace_id=run.workspace_id,
            environment_id=run.environment_id,
            definition=version.definition,
            source=f"invoke/{run.run_id}",
            automation_id=target,
            version_pk=version.id,
            recipient=text(self.recipient, names) if self.recipient is not None else run.recipient,
            data=data if isinstance(data, dict) else {},
            profile=profile if isinstance(profile, dict) else None,
            event=run.context.get("event"),
            brand=text(self.brand, names) if self.brand is not None else run.context.get("brand"),
            parent=run,
        )
        at.outbox.add_run(child.id)
        return {"runId": child.run_id, "automation": target}
