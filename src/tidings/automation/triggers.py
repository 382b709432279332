"""How a stored trigger is found: the `(source, event)` key of the trigger index.

An event trigger `{"source": "segment", "event": "track/Order Shipped"}` is its own key. An
audience trigger `{"source": "audience", "audience": "pricing-hot", "on": "enter"}` is keyed
`("audience", "enter:pricing-hot")`. Schedule triggers are not in the index: they have rows
of their own (automation/schedules.py).
"""

from __future__ import annotations

from typing import Any

AUDIENCE = "audience"
AUDIENCE_MOMENTS = ("enter", "exit")


def audience_trigger_key(audience_id: str, on: str) -> str:
    return f"{on}:{audience_id}"


def index_key(trigger: dict[str, Any]) -> tuple[str, str] | None:
    """The trigger index's key of a stored trigger; None for a trigger it does not hold."""
    if "event" in trigger:
        return str(trigger["source"]), str(trigger["event"])
    if trigger.get("source") == AUDIENCE:
        return AUDIENCE, audience_trigger_key(str(trigger["audience"]), str(trigger["on"]))
    return None
