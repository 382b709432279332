"""Schedule triggers: an automation started on a cron schedule, in a time zone.

A trigger `{"source": "schedule", "cron": "0 9 * * MON", "timezone": "Europe/Paris",
"list_id": "weekly-digest", "data": {...}}` starts the automation's current version at each
tick: one run per subscriber of `list_id`, per member of `audience_id` at the tick, or one
run for `recipient`.

- `check_trigger` validates a trigger when the definition is saved (ScheduleError names the
  field below the trigger).
- `sync` keeps the `AutomationSchedule` rows in step with the automation: one row per
  schedule trigger of an enabled live automation, holding the next tick (`next_fire_at`,
  UTC). A trigger kept as it was by a save keeps its row and its next tick.
- `fire_due(database, now)` fires every tick due at `now`; the sweeper calls it (when a
  consumer starts and every minute), and tests pass the `now` they choose.

Exactly once: a tick is claimed by a compare-and-set of `next_fire_at` (`UPDATE … WHERE id =
:id AND next_fire_at = :due`) in the transaction that starts its runs, so two processes never
both fire it and a crash before the commit leaves it due. A list's runs are started
CHUNK subscribers a transaction: `firing_tick` and `firing_after` (the last subscription
started) move on by compare-and-set with each chunk's runs, so a crash between chunks
resumes after the last committed one. An audience's members are taken the same way, in
the order they entered (a member who enters during the tick's firing is reached if the
firing has not passed it; one who leaves before its chunk is not).

Missed ticks (the server was down): the latest tick at or before `now` fires once, and the
next tick is the first after `now`. Daylight saving time follows cron (cronsim): a tick in
the hour skipped when clocks go forward fires when the clocks land past it (02:30 on a
spring-forward night fires at 03:00); a tick at a fixed time in the hour repeated when
clocks go back fires once, at its first occurrence; a `*` or `*/n` hour or minute fires in
both occurrences of the repeated hour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError
from sqlalchemy.orm import Session

from tidings.audience.repository import AudienceRepository
from tidings.audience.service import check_audience_id

# The steps first: they import the lifecycle of runs, which imports them.
from tidings.automation import steps  # noqa: F401
from tidings.automation.lifecycle import start_automation_run
from tidings.automation.repository import AutomationRepository, ScheduleRepository
from tidings.automation.steps.values import quote
from tidings.db import Database, Outbox
from tidings.errors import AppError
from tidings.kit.time import isoformat, utcnow
from tidings.kit.windows import zone_named
from tidings.list.repository import ListRepository
from tidings.list.service import check_list_id, check_user_id
from tidings.models import Automation, AutomationSchedule
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

SOURCE = "schedule"
TRIGGER_FIELDS = ("source", "cron", "timezone", "list_id", "recipient", "audience_id", "data")
TARGETS = ("list_id", "audience_id", "recipient")
# Runs a list target starts per transaction.
CHUNK = 500
# Due schedules a sweep looks at per query.
DUE_BATCH = 100
_CRON_HELP = (
    "use five fields, minute hour day-of-month month day-of-week, "
    'e.g. "0 9 * * MON" (every Monday at 09:00)'
)


class ScheduleError(ValueError):
    """A schedule trigger that cannot be saved: `at` is the path below the trigger
    (".cron"), `reason` says what is wrong and how to fix it."""

    def __init__(self, at: str, reason: str) -> None:
        super().__init__(f"{at}: {reason}")
        self.at = at
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading schedules


def _cron(expression: Any) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError(".cron", f"a schedule needs a cron expression; {_CRON_HELP}")
    cron = " ".join(expression.split())
    if len(cron.split(" ")) != 5:
        raise ScheduleError(
            ".cron", f"{quote(expression)} has {len(cron.split(' '))} fields; {_CRON_HELP}"
        )
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        reason = str(exc).lower() or "it does not parse"
        raise ScheduleError(
            ".cron", f"{quote(expression)} is not a cron expression ({reason}); {_CRON_HELP}"
        ) from exc
    return cron


def _timezone(value: Any) -> str:
    if value is None:
        return "UTC"
    if zone_named(value) is None:
        raise ScheduleError(
            ".timezone",
            f'{quote(value)} is not an IANA time zone; give one such as "Europe/Paris" or '
            '"America/New_York" (the default is "UTC")',
        )
    return str(value)


def check_trigger(raw: dict[str, Any]) -> dict[str, Any]:
    """A schedule trigger, normalized (`timezone` defaults to UTC, `data` to {}); raises
    ScheduleError naming the field."""
    for key in raw:
        if key not in TRIGGER_FIELDS:
            raise ScheduleError(
                f".{key}",
                f"{quote(key)} is not a field of a schedule trigger; use "
                + ", ".join(TRIGGER_FIELDS[1:]),
            )
    trigger: dict[str, Any] = {
        "source": SOURCE,
        "cron": _cron(raw.get("cron")),
        "timezone": _timezone(raw.get("timezone")),
    }
    given = [key for key in TARGETS if raw.get(key) is not None]
    if len(given) != 1:
        raise ScheduleError(
            "" if not given else f".{given[1]}",
            "a schedule starts the automation for a list, an audience or one recipient: give "
            'exactly one of list_id ("weekly-digest"), audience_id ("pricing-hot") or '
            'recipient ("user-1")',
        )
    (target,) = given
    value = raw[target]
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError(f".{target}", f"must be a non-empty string, not {quote(value)}")
    try:
        {"list_id": check_list_id, "audience_id": check_audience_id}.get(target, check_user_id)(
            value, target
        )
    except AppError as exc:
        raise ScheduleError(f".{target}", exc.message) from exc
    trigger[target] = value
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise ScheduleError(".data", "must be an object: the data of each run it starts")
    trigger["data"] = data
    return trigger


def _zone(trigger: dict[str, Any]) -> Any:
    return zone_named(trigger.get("timezone")) or UTC


def next_tick(trigger: dict[str, Any], after: datetime) -> datetime:
    """The first tick strictly after `after`, in UTC."""
    local = after.astimezone(_zone(trigger))
    return next(CronSim(trigger["cron"], local)).astimezone(UTC)


def latest_tick(trigger: dict[str, Any], at: datetime) -> datetime:
    """The last tick at or before `at`, in UTC."""
    local = (at + timedelta(seconds=1)).astimezone(_zone(trigger))
    return next(CronSim(trigger["cron"], local, reverse=True)).astimezone(UTC)


def describe(trigger: dict[str, Any]) -> str:
    """`0 9 * * MON Europe/Paris → list weekly-digest`, for lists of triggers."""
    target = (
        f"list {trigger['list_id']}"
        if trigger.get("list_id") is not None
        else f"audience {trigger['audience_id']}"
        if trigger.get("audience_id") is not None
        else f"recipient {trigger.get('recipient')}"
    )
    return f"{trigger['cron']} {trigger['timezone']} → {target}"


# ---------------------------------------------------------------------------------------------
# Keeping the rows in step with the automation


def sync(session: Session, automation: Automation, triggers: list[dict[str, Any]]) -> None:
    """The schedule rows of `automation` after a save or a delete: one per schedule trigger
    when it is enabled and live, none otherwise. A trigger that is already there keeps its
    row (and its next tick, even one that is due and not fired yet); a new one gets its
    first tick after now."""
    wanted = (
        [trigger for trigger in triggers if trigger["source"] == SOURCE]
        if automation.enabled and automation.deleted_at is None
        else []
    )
    repository = ScheduleRepository(session)
    now = utcnow()
    for row in repository.of_automation(automation.id):
        if row.trigger in wanted:
            wanted.remove(row.trigger)
        else:
            session.delete(row)
    for trigger in wanted:
        session.add(
            AutomationSchedule(
                automation_pk=automation.id,
                environment_id=automation.environment_id,
                trigger=trigger,
                next_fire_at=next_tick(trigger, now),
                created_at=now,
            )
        )
    session.flush()


# ---------------------------------------------------------------------------------------------
# Firing ticks


@dataclass
class _Step:
    runs: int = 0
    done: bool = True


def next_due(database: Database) -> datetime | None:
    """When the next schedule tick is due, if any schedule is set."""
    with database.read() as session:
        return ScheduleRepository(session).next_fire_at()


def fire_due(database: Database, now: datetime | None = None, *, limit: int = DUE_BATCH) -> int:
    """Fire every schedule tick due at `now` (default: the current time), and carry on the
    ticks a crash left half fired; returns how many runs were started.

    `now` is the clock of the schedules: tests fire a chosen tick by passing it."""
    now = now or utcnow()
    started = 0
    tried: set[int] = set()
    while True:
        with database.read() as session:
            due = ScheduleRepository(session).due(now, tried, limit)
        for schedule_pk in due:
            # Tried once per call: a failing one (or one another process is firing) does not
            # hold up the others, and is taken up by the next sweep.
            tried.add(schedule_pk)
            step = _Step(done=False)
            while not step.done:
                try:
                    with database.write() as (session, outbox):
                        step = _fire_chunk(session, outbox, schedule_pk, now)
                except Exception:
                    # The chunk rolled back: its tick stays due (or half fired).
                    logger.exception("firing schedule %s failed", schedule_pk)
                    break
                started += step.runs
        if len(due) < limit:
            return started


def _claim(
    schedules: ScheduleRepository, row: AutomationSchedule, now: datetime
) -> tuple[datetime, int] | None:
    """Claim a due tick, or the next chunk of the tick being fired: the tick and the last
    recipient row already fired for it (None: nothing is due, or another process claimed
    it first)."""
    if row.firing_tick is None:
        if row.next_fire_at > now:
            return None
        tick = max(row.next_fire_at, latest_tick(row.trigger, now))
        after = 0
        claimed = schedules.claim(
            row.id,
            {"next_fire_at": row.next_fire_at, "firing_tick": None},
            next_fire_at=next_tick(row.trigger, now),
            last_tick=tick,
            firing_tick=tick,
            firing_after=after,
        )
    else:
        tick, after = row.firing_tick, row.firing_after or 0
        claimed = schedules.claim(
            row.id, {"firing_tick": tick, "firing_after": after}, firing_after=after
        )
    return (tick, after) if claimed else None


def _fire_chunk(session: Session, outbox: Outbox, schedule_pk: int, now: datetime) -> _Step:
    """One transaction of firing: claim a due tick (or the next chunk of a tick being fired)
    and start its runs."""
    schedules = ScheduleRepository(session)
    row = schedules.get(schedule_pk)
    if row is None:
        return _Step()
    trigger = row.trigger
    claimed = _claim(schedules, row, now)
    if claimed is None:
        return _Step()
    tick, after = claimed
    found = AutomationRepository(session).live_current_version(row.automation_pk)
    recipients: list[str] = []
    last: int | None = None
    if found is not None:
        recipients, last = _recipients(session, found[0], trigger, after)
    more = last is not None and len(recipients) == CHUNK
    schedules.claim(
        schedule_pk,
        {},
        firing_tick=tick if more else None,
        firing_after=last if more else None,
    )
    if found is None:
        return _Step()
    automation, version = found
    event = {
        "source": SOURCE,
        "cron": trigger["cron"],
        "timezone": trigger["timezone"],
        "tick": isoformat(tick),
    }
    for recipient in recipients:
        run = start_automation_run(
            session,
            automation,
            version,
            source=f"{SOURCE}/{trigger['cron']}",
            recipient=recipient,
            data=trigger.get("data"),
            event=event,
        )
        outbox.add_run(run.id)
    return _Step(runs=len(recipients), done=not more)


def _recipients(
    session: Session, automation: Automation, trigger: dict[str, Any], after: int
) -> tuple[list[str], int | None]:
    """The recipients of the tick's next chunk and the last subscription's (or audience
    stay's) id in it (None for a single recipient)."""
    if trigger.get("audience_id") is not None:
        audiences = AudienceRepository(session)
        audience = audiences.get(automation.environment_id, trigger["audience_id"])
        if audience is None:
            return [], None
        members = audiences.member_ids_after(audience.id, after, CHUNK)
        return [user_id for _, user_id in members], (members[-1][0] if members else None)
    if trigger.get("list_id") is None:
        return [str(trigger["recipient"])], None
    scope = Scope(automation.workspace_id, automation.environment_id, "", "")
    rows = ListRepository(session).subscriptions(scope, trigger["list_id"], after, CHUNK)
    return [row.user_id for row in rows], (rows[-1].id if rows else None)
