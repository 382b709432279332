"""`update-profile`: merge an object into a user's profile (the run's recipient by default)."""

from __future__ import annotations

from typing import Annotated, Literal

from tidings.automation.steps.base import Outcome, Step, StepFailed, StepRun
from tidings.automation.steps.fields import MergeMode, Needed, Object, OptionalText
from tidings.automation.steps.values import merge, resolve, text
from tidings.kit.jsondoc import diff
from tidings.profile.repository import ProfileRepository


class UpdateProfile(Step):
    action: Literal["update-profile"]
    recipient_id: OptionalText = None
    profile: Annotated[Object, Needed("an update-profile step needs a profile object")]
    merge: MergeMode = "soft-merge"

    def run(self, at: StepRun) -> Outcome:
        run, names = at.run, at.names
        user_id = text(self.recipient_id, names) if self.recipient_id is not None else run.recipient
        if not user_id:
            raise StepFailed(
                'update-profile has no user: give "recipient_id", or start the run with a recipient'
            )
        patch = resolve(self.profile, names)
        if not isinstance(patch, dict):
            raise StepFailed("update-profile: the profile must be an object")
        repository = ProfileRepository(at.session)
        profile, _ = repository.get_or_create_for_update(at.scope, user_id)
        before = dict(profile.data)
        after = merge(self.merge, before, patch)
        repository.save(profile, after)
        if user_id == run.recipient:
            context = dict(run.context)
            context["profile"] = after
            run.context = context
        return {"recipient_id": user_id, "merge": self.merge, "diff": diff(before, after)}
