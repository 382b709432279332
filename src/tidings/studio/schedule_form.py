"""The automation editor's schedule triggers as form rows (cron, zone, target, data), and back.

A row's fields are named `schedule-<n>-cron`, `-timezone`, `-target` (`list_id`,
`audience_id` or `recipient`), `-target_id` and `-data` (a JSON object). The editor always
shows one empty row more, to add a schedule; a row left empty is no trigger, so emptying a
row removes it. A definition error at `triggers[i]…` of a schedule is shown at the row's
field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tidings.automation import schedules
from tidings.kit.time import utcnow
from tidings.kit.windows import zone_named

FIELDS = ("cron", "timezone", "target", "target_id", "data")
_NAME = re.compile(r"^schedule-(\d+)-(cron|timezone|target|target_id|data)$")
_TRIGGER_PATH = re.compile(r"^triggers\[(\d+)\](?:\.(\w+))?")


@dataclass
class ScheduleRow:
    """One schedule trigger as the form shows it (every value text)."""

    cron: str = ""
    timezone: str = ""
    target: str = "list_id"
    target_id: str = ""
    data: str = ""
    # Set by `triggers_of` for the rows that make a trigger: its index in `triggers`.
    position: int | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.cron.strip() or self.target_id.strip() or self.data.strip())

    def next_tick(self, now: datetime | None = None) -> str:
        """When it fires next, in its zone and in UTC; empty while it does not validate."""
        try:
            trigger = schedules.check_trigger(
                {
                    "source": schedules.SOURCE,
                    "cron": self.cron,
                    "timezone": self.timezone.strip() or None,
                    "recipient": "-",
                }
            )
        except schedules.ScheduleError:
            return ""
        tick = schedules.next_tick(trigger, now or utcnow())
        local = tick.astimezone(zone_named(trigger["timezone"]) or UTC)
        return f"{local:%a %d %b %Y %H:%M} {trigger['timezone']}" + (
            "" if trigger["timezone"] == "UTC" else f" ({tick:%H:%M} UTC)"
        )


def rows_of(triggers: list[dict[str, Any]]) -> list[ScheduleRow]:
    """The schedule triggers of a definition as rows."""
    rows = []
    for trigger in triggers:
        if trigger.get("source") != schedules.SOURCE:
            continue
        target = next((key for key in schedules.TARGETS if trigger.get(key) is not None), "list_id")
        data = trigger.get("data") or {}
        rows.append(
            ScheduleRow(
                cron=str(trigger.get("cron") or ""),
                timezone=str(trigger.get("timezone") or ""),
                target=target,
                target_id=str(trigger.get(target) or ""),
                data=json.dumps(data, ensure_ascii=False) if data else "",
            )
        )
    return rows


def rows_from_form(items: Iterable[tuple[str, str]]) -> list[ScheduleRow]:
    """The rows the form posted, in their order; empty ones are dropped."""
    found: dict[int, dict[str, str]] = {}
    for name, value in items:
        match = _NAME.match(name)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = value
    rows = [
        ScheduleRow(
            cron=values.get("cron", ""),
            timezone=values.get("timezone", ""),
            target=values.get("target", "list_id"),
            target_id=values.get("target_id", ""),
            data=values.get("data", ""),
        )
        for values in (found[index] for index in sorted(found))
    ]
    return [row for row in rows if not row.empty]


def triggers_of(
    rows: list[ScheduleRow], first_position: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rows as triggers (the first at `first_position` in the definition's triggers), or
    the errors of data that is no JSON object, by field name."""
    triggers: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for index, row in enumerate(rows):
        trigger: dict[str, Any] = {"source": schedules.SOURCE, "cron": row.cron.strip()}
        if row.timezone.strip():
            trigger["timezone"] = row.timezone.strip()
        target = row.target if row.target in schedules.TARGETS else "list_id"
        if row.target_id.strip():
            trigger[target] = row.target_id.strip()
        if row.data.strip():
            try:
                trigger["data"] = json.loads(row.data)
            except json.JSONDecodeError as exc:
                errors[f"schedule-{index}-data"] = (
                    f"data: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
                )
        row.position = first_position + index
        triggers.append(trigger)
    return triggers, errors


def error_name(path: str, rows: list[ScheduleRow]) -> str | None:
    """The form field of a definition error at a schedule trigger's path, or None."""
    match = _TRIGGER_PATH.match(path)
    if match is None:
        return None
    position, sub = int(match[1]), match[2] or ""
    for index, row in enumerate(rows):
        if row.position == position:
            name = sub if sub in ("cron", "timezone", "data") else "target_id"
            return f"schedule-{index}-{name}"
    return None
