"""`cancel`: cancel the other active runs that carry a cancelation token."""

from __future__ import annotations

from typing import Annotated, Literal

from tidings.automation.lifecycle import cancel_run
from tidings.automation.repository import RunRepository
from tidings.automation.steps.base import Outcome, Step, StepRun
from tidings.automation.steps.fields import Needed, Text
from tidings.automation.steps.values import cancelation_token


class Cancel(Step):
    action: Literal["cancel"]
    cancelation_token: Annotated[
        Text, Needed("a cancel step needs the cancelation_token of the runs to cancel")
    ]

    def run(self, at: StepRun) -> Outcome:
        token = cancelation_token(self.cancelation_token, at.names)
        if not token:
            return {"cancelation_token": None, "canceled": []}
        run = at.run
        canceled = []
        for other in RunRepository(at.session).active_with_token(run.environment_id, token, run.id):
            cancel_run(at.session, other, f"canceled by run {run.run_id}")
            canceled.append(other.run_id)
        return {"cancelation_token": token, "canceled": canceled}
