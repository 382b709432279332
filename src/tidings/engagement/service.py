"""Open and click tracking rules: which sends are tracked.

A template's `tracking` (`{"opens", "clicks"}`, each true, false or left to the default)
wins over its environment's default, which is off for both. An email is instrumented when it
is rendered (`message.pipeline` calls `instrument_email`), so the message's output holds the
HTML as it was sent. What an open or click does is callback/hits.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.engagement.links import Instrumented, instrument
from tidings.engagement.schemas import EnvironmentTracking
from tidings.workspace.repository import WorkspaceRepository


@dataclass(frozen=True, slots=True)
class Tracking:
    opens: bool = False
    clicks: bool = False

    @property
    def any(self) -> bool:
        return self.opens or self.clicks


def environment_tracking(session: Session, environment_id: str) -> EnvironmentTracking:
    environment = WorkspaceRepository(session).environment(environment_id)
    stored = environment.tracking if environment is not None else None
    return EnvironmentTracking.model_validate(stored or {})


def set_environment_tracking(
    session: Session, environment_id: str, settings: EnvironmentTracking
) -> EnvironmentTracking:
    environment = WorkspaceRepository(session).environment(environment_id)
    assert environment is not None  # the caller's own environment
    environment.tracking = settings.model_dump()
    return settings


def resolve(
    template: dict[str, Any] | None, environment_default: Callable[[], EnvironmentTracking]
) -> Tracking:
    """What a send of `template`'s tracking tracks: each setting the template leaves out is
    the environment's (`environment_default`, called only when one is left out)."""
    template = template or {}
    opens, clicks = template.get("opens"), template.get("clicks")
    if opens is None or clicks is None:
        default = environment_default()
        opens = default.opens if opens is None else opens
        clicks = default.clicks if clicks is None else clicks
    return Tracking(opens=bool(opens), clicks=bool(clicks))


def instrument_email(
    rendered: dict[str, Any],
    template_tracking: dict[str, Any] | None,
    *,
    environment_default: Callable[[], EnvironmentTracking],
    key: bytes,
    base_url: str,
    message_id: str,
) -> Instrumented | None:
    """Track the rendered email's HTML in place (`rendered["html"]`) as the template's
    tracking and the environment's default (`environment_tracking`, which the caller reads
    once for all the messages of its transaction) say; None when there is nothing to do (no
    HTML, no signing key, tracking off). The default is asked for only for an HTML email
    whose template leaves a setting to it."""
    source = rendered.get("html")
    if not (key and isinstance(source, str) and source.strip()):
        return None
    tracking = resolve(template_tracking, environment_default)
    if not tracking.any:
        return None
    done = instrument(
        source,
        key=key,
        base_url=base_url,
        message_id=message_id,
        opens=tracking.opens,
        clicks=tracking.clicks,
    )
    rendered["html"] = done.html
    return done
