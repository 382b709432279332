"""The base of the API's request bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A body that refuses keys it does not define: a misspelt field is a 400 naming it, not
    a value silently dropped."""

    model_config = ConfigDict(extra="forbid")
