from __future__ import annotations

from pydantic import Field

from tidings.kit.schemas import StrictModel


class TemplateTracking(StrictModel):
    """A template's open and click tracking; a setting left out or null takes the
    environment's default (`GET /settings/tracking`)."""

    opens: bool | None = Field(
        default=None,
        description="Add an open pixel to the HTML email. Null: the environment's default.",
    )
    clicks: bool | None = Field(
        default=None,
        description="Send the HTML email's http and https links through Tidings' tracked "
        "redirect. Null: the environment's default.",
    )


class EnvironmentTracking(StrictModel):
    """The environment's default open and click tracking, for the templates that do not set
    their own. Off unless turned on: most sends are transactional."""

    opens: bool = Field(default=False, description="Track opens (an open pixel).")
    clicks: bool = Field(default=False, description="Track clicks (tracked links).")
