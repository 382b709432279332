"""`fetch-data`: request a webhook and merge the JSON object it answers into the run's data.

The request is made outside any transaction (`Fetch`); with an `idempotency_key`, a request
repeated after a crash carries the same `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from tidings.automation.steps.base import Fetch, Fetched, Outcome, Step, StepRun
from tidings.automation.steps.fields import MergeMode, Needed, OptionalText, Value
from tidings.automation.steps.values import merge
from tidings.automation.steps.webhook import Webhook


class FetchData(Step):
    action: Literal["fetch-data"]
    webhook: Annotated[Webhook, Needed("a fetch-data step needs a webhook: {url, method}")]
    merge_strategy: MergeMode = "soft-merge"
    idempotency_key: OptionalText = None
    idempotency_expiry: Value = None

    calls_network: ClassVar[bool] = True

    def run(self, at: StepRun) -> Outcome:
        return Fetch([self.webhook.call(at.names, self.idempotency_key)], self._merge_into_data)

    def _merge_into_data(self, at: StepRun, fetched: list[Fetched]) -> dict[str, Any]:
        ((_, answer),) = fetched
        context = dict(at.run.context)
        context["data"] = merge(self.merge_strategy, context.get("data") or {}, answer)
        at.run.context = context
        return answer
