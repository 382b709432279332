"""Keeping audience membership true: after each change, as time passes, and after an edit.

- `refresh(session, outbox, environment_id, users, touched)` evaluates the environment's
  audiences that read what changed (`touched`) for these users, in the caller's transaction:
  an event's processing, a profile or list write, a re-check, a scan. A user who now matches
  and was not a member enters (a new stay); a member who no longer matches leaves. Each entry
  and exit starts the automations whose trigger is `{"source": "audience", "audience", "on"}`,
  once, in the same transaction: the stay's row is what makes it once.
- Time: each evaluation also says when the answer could next change with no new data (an
  event leaving a "7 days" window); that time is kept as the user's re-check
  (`audience_check`), and `check_due(database, now)` re-evaluates the users whose time has
  come. Nothing rescans everyone as time passes.
- An edit of the condition starts a scan of every user (`scan(database, audience_pk)`): the
  users with a profile and those the condition can reach without one, in user id order, in
  chunks of SCAN_CHUNK, each a transaction that moves the audience's scan cursor on; a crash
  resumes after the last committed chunk (the sweeper queues the scans not finished).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.audience.conditions import (
    Facts,
    Node,
    Occurrence,
    evaluate,
    needs,
    parse,
)
from tidings.audience.repository import AudienceRepository
from tidings.automation.runs import start_audience_runs
from tidings.db import Database, Outbox
from tidings.eventstore.repository import EventRepository
from tidings.kit.time import utcnow
from tidings.list.repository import ListRepository
from tidings.models import Audience, AutomationRun
from tidings.profile.repository import ProfileRepository
from tidings.tenant.repository import TenantRepository
from tidings.touched import EVERYTHING, Needs, Touch, take

logger = logging.getLogger(__name__)

# Profiles a scan evaluates per transaction.
SCAN_CHUNK = 500
# Re-checks the sweeper takes per transaction.
CHECK_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Compiled:
    """An audience's stored condition, parsed, and what it reads."""

    pk: int
    workspace_id: str
    audience_id: str
    version: int
    condition: Node
    needs: Needs


@dataclass(frozen=True, slots=True)
class Change:
    audience_id: str
    user_id: str
    entered: bool


# Parsed conditions by their JSON: parsing is paid once per condition per process.
_PARSED: dict[str, tuple[Node, Needs]] = {}


def compile_audience(audience: Audience) -> Compiled:
    stored = audience.definition["condition"]
    key = json.dumps(stored, sort_keys=True)
    parsed = _PARSED.get(key)
    if parsed is None:
        condition = parse(stored)
        parsed = (condition, needs(condition))
        if len(_PARSED) > 10_000:
            _PARSED.clear()
        _PARSED[key] = parsed
    return Compiled(
        audience.id,
        audience.workspace_id,
        audience.audience_id,
        audience.version,
        parsed[0],
        parsed[1],
    )


def audiences_of(session: Session, environment_id: str) -> list[Compiled]:
    return [
        compile_audience(row) for row in AudienceRepository(session).of_environment(environment_id)
    ]


def reads(audience: Needs, touched: Needs) -> bool:
    """Whether an audience that reads `audience` can change when `touched` changed."""
    return bool(
        (audience.traits and touched.traits)
        or (audience.events and (touched.any_event or audience.events & touched.events))
        or (audience.lists and touched.lists)
        or (audience.tenants and touched.tenants)
        or (audience.first_seen and touched.first_seen)
        or (audience.last_seen and touched.last_seen)
    )


def load_facts(
    session: Session,
    environment_id: str,
    user_ids: Collection[str],
    wanted: Needs,
    seen: Mapping[str, datetime] | None = None,
) -> dict[str, Facts]:
    """What the conditions need to know of each user, a query per kind of fact (`seen`:
    when some users were last seen, known already)."""
    facts = {user_id: Facts() for user_id in user_ids}
    if wanted.traits or wanted.first_seen:
        for user_id, (traits, created_at) in (
            ProfileRepository(session).audience_facts(environment_id, user_ids).items()
        ):
            facts[user_id].traits = traits
            facts[user_id].first_seen = created_at
    if wanted.events:
        events: dict[str, dict[str, list[Occurrence]]] = {}
        for user_id, name, at, properties in EventRepository(session).occurrences(
            environment_id, user_ids, wanted.events, properties=wanted.event_properties
        ):
            events.setdefault(user_id, {}).setdefault(name, []).append(Occurrence(at, properties))
        for user_id, by_name in events.items():
            for occurrences in by_name.values():
                occurrences.sort(key=lambda occurrence: occurrence.at, reverse=True)
            facts[user_id].events = by_name
    if wanted.lists:
        for user_id, list_ids in (
            ListRepository(session).list_ids_of_users(environment_id, user_ids).items()
        ):
            facts[user_id].lists = frozenset(list_ids)
    if wanted.tenants:
        for user_id, tenant_ids in (
            TenantRepository(session).tenant_ids_of_users(environment_id, user_ids).items()
        ):
            facts[user_id].tenants = frozenset(tenant_ids)
    if wanted.last_seen:
        known = seen or {}
        unknown = [user_id for user_id in user_ids if user_id not in known]
        if unknown:
            for user_id, at in EventRepository(session).last_seen(environment_id, unknown).items():
                facts[user_id].last_seen = at
        for user_id, at in known.items():
            if user_id in facts:
                facts[user_id].last_seen = at
    return facts


@dataclass
class Refreshed:
    """What a refresh did: the entries and exits, and the runs they started."""

    changes: list[Change]
    runs: list[AutomationRun]

    def effects(self) -> dict[str, list[str]]:
        """A line per entry, exit and started run, by user (for an event's record)."""
        lines: dict[str, list[str]] = {}
        for change in self.changes:
            verb = "entered" if change.entered else "left"
            lines.setdefault(change.user_id, []).append(f"{verb} audience {change.audience_id!r}")
        for run in self.runs:
            lines.setdefault(run.recipient or "", []).append(
                f"started automation {run.automation_id!r} (run {run.run_id}) on "
                f"{run.source.removeprefix('audience/')}"
            )
        return lines


@dataclass
class _Verdicts:
    """What the conditions say of each (audience, user): the rows to enter and the stays to
    end, each pair's next re-check, and the entries and exits."""

    entering: list[dict[str, object]] = field(default_factory=list)
    leaving: list[int] = field(default_factory=list)
    checks: dict[tuple[int, str], datetime | None] = field(default_factory=dict)
    changes: list[tuple[Compiled, Change]] = field(default_factory=list)


def _judge(
    audiences: list[Compiled],
    users: list[str],
    facts: Mapping[str, Facts],
    current: Mapping[tuple[int, str], int],
    environment_id: str,
    now: datetime,
) -> _Verdicts:
    """Evaluate each audience's condition for each user against their current stays."""
    verdicts = _Verdicts()
    for audience in audiences:
        for user_id in users:
            matches, check_at = evaluate(audience.condition, facts[user_id], now)
            stay = current.get((audience.pk, user_id))
            if matches and stay is None:
                verdicts.entering.append(
                    {
                        "environment_id": environment_id,
                        "audience_pk": audience.pk,
                        "user_id": user_id,
                        "version": audience.version,
                        "entered_at": now,
                    }
                )
                verdicts.changes.append((audience, Change(audience.audience_id, user_id, True)))
            elif not matches and stay is not None:
                verdicts.leaving.append(stay)
                verdicts.changes.append((audience, Change(audience.audience_id, user_id, False)))
            verdicts.checks[(audience.pk, user_id)] = check_at
    return verdicts


def refresh(
    session: Session,
    outbox: Outbox | None,
    environment_id: str,
    user_ids: Iterable[str],
    touched: Needs = EVERYTHING,
    *,
    only: Collection[int] | None = None,
    now: datetime | None = None,
    seen: Mapping[str, datetime] | None = None,
) -> Refreshed:
    """Evaluate the audiences that read what `touched` says changed (`only`: these audience
    rows) for these users, and record entries, exits and re-checks. The runs entries and exits
    start go to `outbox` (None: the caller advances them, from `Refreshed.runs`). `seen`:
    when users were last seen, where the caller knows it (events just processed)."""
    users = sorted({user_id for user_id in user_ids if user_id})
    if not users:
        return Refreshed([], [])
    audiences = [
        audience
        for audience in audiences_of(session, environment_id)
        if (only is None or audience.pk in only) and reads(audience.needs, touched)
    ]
    if not audiences:
        return Refreshed([], [])
    now = now or utcnow()
    wanted = Needs()
    for audience in audiences:
        wanted = wanted | audience.needs
    facts = load_facts(session, environment_id, users, wanted, seen)
    repository = AudienceRepository(session)
    verdicts = _judge(
        audiences,
        users,
        facts,
        repository.current([audience.pk for audience in audiences], users),
        environment_id,
        now,
    )
    repository.enter(verdicts.entering)
    repository.leave(verdicts.leaving, now)
    repository.set_checks(environment_id, verdicts.checks)
    runs: list[AutomationRun] = []
    for _, change in verdicts.changes:
        runs += start_audience_runs(
            session,
            environment_id=environment_id,
            audience_id=change.audience_id,
            user_id=change.user_id,
            on="enter" if change.entered else "exit",
            at=now,
        )
    if outbox is not None:
        for run in runs:
            outbox.add_run(run.id)
    return Refreshed([change for _, change in verdicts.changes], runs)


def refresh_touched(session: Session, outbox: Outbox) -> None:
    """Refresh the users this unit of work noted (`touched.touch`), before it commits: per
    environment, all of them at once. The last event that touched a user gets a line per
    entry, exit and run it led to."""
    taken = take(session)
    by_environment: dict[str, dict[str, Touch]] = {}
    for (environment_id, user_id), found in taken.items():
        by_environment.setdefault(environment_id, {})[user_id] = found
    for environment_id, touches in by_environment.items():
        changed = Needs()
        for found in touches.values():
            changed = changed | found.changed
        seen = {user: found.seen for user, found in touches.items() if found.seen is not None}
        refreshed = refresh(session, outbox, environment_id, touches, changed, seen=seen)
        for user_id, lines in refreshed.effects().items():
            events = touches[user_id].events
            if events:
                events[-1].effects = [*events[-1].effects, *lines]


def next_check(database: Database) -> datetime | None:
    """When the next re-check of a member is due, if any is waiting."""
    with database.read() as session:
        return AudienceRepository(session).next_check_at()


def check_due(database: Database, now: datetime | None = None) -> int:
    """Re-evaluate the users whose membership can have changed by time alone; returns how
    many re-checks ran. Each chunk is claimed by deleting its re-checks in the transaction
    that re-evaluates them, so concurrent sweeps never do one twice."""
    now = now or utcnow()
    done = 0
    while True:
        with database.read() as session:
            due = AudienceRepository(session).due_checks(now, CHECK_CHUNK)
        if not due:
            return done
        by_environment: dict[str, list[int]] = {}
        for check_id, environment_id, _, _ in due:
            by_environment.setdefault(environment_id, []).append(check_id)
        for environment_id, check_ids in by_environment.items():
            with database.write() as (session, outbox):
                claimed = AudienceRepository(session).claim_checks(check_ids, now)
                for audience_pk in {audience_pk for audience_pk, _ in claimed}:
                    users = [user for pk, user in claimed if pk == audience_pk]
                    refresh(session, outbox, environment_id, users, only={audience_pk}, now=now)
                done += len(claimed)
        if len(due) < CHECK_CHUNK:
            return done


def scan(database: Database, audience_pk: int) -> bool:
    """Evaluate every profile against the audience's current condition, a chunk per
    transaction, from where the last committed chunk left off; True once the scan of the
    current version is complete."""
    while True:
        with database.write() as (session, outbox):
            state = _scan_chunk(session, outbox, audience_pk)
        if state is not None:
            return state


def _scan_users(session: Session, audience: Compiled, environment_id: str, after: str) -> list[str]:
    """The next SCAN_CHUNK users to evaluate after `after`, in id order: users with a profile,
    and those the condition can reach without one (list subscribers, tenant members, users
    with one of its events). Each source gives its next SCAN_CHUNK ids; the chunk is the
    first SCAN_CHUNK of them all, so no id at or below the chunk's last is left out."""
    sources = [ProfileRepository(session).user_ids_after(environment_id, after, SCAN_CHUNK)]
    if audience.needs.lists:
        sources.append(
            ListRepository(session).subscriber_ids_after(environment_id, after, SCAN_CHUNK)
        )
    if audience.needs.tenants:
        sources.append(
            TenantRepository(session).member_ids_after(environment_id, after, SCAN_CHUNK)
        )
    if audience.needs.events:
        sources.append(
            EventRepository(session).user_ids_after(
                environment_id, audience.needs.events, after, SCAN_CHUNK
            )
        )
    return sorted({user_id for source in sources for user_id in source})[:SCAN_CHUNK]


def _scan_chunk(session: Session, outbox: Outbox, audience_pk: int) -> bool | None:
    """One chunk of a scan; True when the scan is complete, False when the audience is gone,
    None while more follow."""
    repository = AudienceRepository(session)
    audience = repository.get_for_update(audience_pk)
    if audience is None:
        return False
    now = utcnow()
    if audience.scan_version != audience.version:
        audience.scan_version = audience.version
        audience.scan_after = ""
        audience.scanned = 0
        audience.scan_total = ProfileRepository(session).count_users(audience.environment_id)
        audience.scan_started_at = now
        audience.scan_finished_at = None
    elif audience.scan_finished_at is not None:
        return True
    compiled = compile_audience(audience)
    users = _scan_users(session, compiled, audience.environment_id, audience.scan_after or "")
    if users:
        refresh(session, outbox, audience.environment_id, users, only={audience.id}, now=now)
        audience.scan_after = users[-1]
        audience.scanned = audience.scanned + len(users)
    if len(users) < SCAN_CHUNK:
        audience.scan_finished_at = now
        audience.scan_total = audience.scanned
        return True
    return None


def unfinished_scans(database: Database) -> list[int]:
    with database.read() as session:
        return list(AudienceRepository(session).unfinished_scans())


@dataclass(frozen=True, slots=True)
class Preview:
    """How many of the first `evaluated` users a draft condition matches; `complete` when
    they are every user it could reach; `sample`: the first matching user ids."""

    matches: int
    evaluated: int
    complete: bool
    sample: list[str]


# Users a preview evaluates at most: a live count while editing stays quick.
PREVIEW_USERS = 20_000
PREVIEW_SAMPLE = 10


def preview(
    session: Session,
    environment_id: str,
    condition: Node,
    *,
    limit: int = PREVIEW_USERS,
    now: datetime | None = None,
) -> Preview:
    """Evaluate a draft condition as a scan would, without writing anything (Studio's live
    count while editing)."""
    now = now or utcnow()
    draft = Compiled(0, "", "", 0, condition, needs(condition))
    after, evaluated, matches = "", 0, 0
    sample: list[str] = []
    while evaluated < limit:
        users = _scan_users(session, draft, environment_id, after)
        if not users:
            return Preview(matches, evaluated, True, sample)
        facts = load_facts(session, environment_id, users, draft.needs)
        for user_id in users:
            if evaluate(condition, facts[user_id], now)[0]:
                matches += 1
                if len(sample) < PREVIEW_SAMPLE:
                    sample.append(user_id)
        evaluated += len(users)
        after = users[-1]
        if len(users) < SCAN_CHUNK:
            return Preview(matches, evaluated, True, sample)
    return Preview(matches, evaluated, False, sample)
