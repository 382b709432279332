"""The suppression list: addresses Tidings does not send to, per environment.

An entry is `{channel, address, topic_id, reason, source, detail, created_at}`; `topic_id`
None (stored as "") holds for every message, a topic id only for the messages of that topic.
Entries come from:
- the vendors' reports (`apply_feedback`, called by `callback.service.apply_report`): a hard
  bounce (HARD_BOUNCE) and a complaint (COMPLAINT) at once; soft bounces (SOFT_BOUNCES) once
  `Settings.soft_bounce_limit` arrived in a row, a delivery to the address ending the row;
- a one-click unsubscribe from a topic that is not REQUIRED (`record_unsubscribe`, called by
  `unsubscribe.service.unsubscribe`): UNSUBSCRIBED for the user's email address, scoped to
  that topic. The user's preference says OPTED_OUT too; when the user opts in again, or
  their choice is deleted, the entry goes (`lift_unsubscribe`), so the two never disagree;
- the API, Studio and CSV imports (MANUAL, or the reason the caller gives).

Every send checks the list before routing (`message.pipeline`, through `Suppressed`): a
suppressed channel is skipped, so routing falls over to the next channel; a message with no
channel left because of the list ends SUPPRESSED with the entry's reason.

Addresses are compared normalized (`normalize`): an email address trimmed and lower-cased, a
phone number trimmed and without spaces, dashes, dots or parentheses (E.164 as stored), any
other channel's address trimmed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.db import Database
from tidings.errors import BadRequest, NotFound, PayloadTooLarge
from tidings.kit.sql import InEnvironment
from tidings.kit.time import isoformat, utcnow
from tidings.models import Suppression, SuppressionReason
from tidings.models.suppression import EVERY_TOPIC
from tidings.profile.repository import ProfileRepository
from tidings.provider.base import CHANNELS, channel_address
from tidings.suppression.repository import SuppressionRepository
from tidings.workspace.service import Scope

MAX_ADDRESS = 500
MAX_TOPIC_ID = 200
MAX_DETAIL = 1000
# A CSV import: at most this many bytes and data rows; at most this many bad rows named.
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000
SHOWN_ERRORS = 20
# The export's columns; an import reads channel and address, and reason, topic_id and detail
# when present, and ignores the others, so an export imports as it is.
CSV_COLUMNS = ("channel", "address", "topic_id", "reason", "source", "detail", "created_at")
EXPORT_PAGE = 1000

# Who put an entry on the list, besides a provider's name.
SOURCE_API = "api"
SOURCE_STUDIO = "studio"
SOURCE_IMPORT = "import"
SOURCE_UNSUBSCRIBE = "unsubscribe"

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"\+?[0-9]{3,20}")


def normalize(channel: str, address: str) -> str:
    """The address as the list stores and compares it. Never raises: the send-time check
    normalizes what profiles hold with it."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    if channel == "sms":
        return _PHONE_SEPARATORS.sub("", address)
    return address


def checked_address(channel: str, address: str, field: str) -> str:
    """`normalize`, for an address given to the API: a 400 naming `field` when it cannot be
    one of the channel's."""
    if channel not in CHANNELS:
        raise BadRequest(
            f"{channel!r} is not a channel. Use one of {', '.join(CHANNELS)}.",
            code="invalid_channel",
            field=_sibling(field, "channel"),
        )
    normalized = normalize(channel, address)
    problem = None
    if not normalized:
        problem = "is empty"
    elif len(normalized) > MAX_ADDRESS:
        problem = f"is over {MAX_ADDRESS} characters"
    elif channel == "email" and (
        "@" not in normalized.strip("@") or any(c.isspace() for c in normalized)
    ):
        problem = "is not an email address (name@example.com)"
    elif channel == "sms" and not _PHONE.fullmatch(normalized):
        problem = "is not a phone number; write it in E.164, such as +15555550100"
    if problem is not None:
        raise BadRequest(
            f"The {channel} address {address!r} {problem}.", code="invalid_address", field=field
        )
    return normalized


def _sibling(field: str, name: str) -> str:
    """The field `name` next to `field`: `suppressions.2.channel` next to
    `suppressions.2.address`."""
    return f"{field.rsplit('.', 1)[0]}.{name}" if "." in field else name


def _topic(topic_id: str | None) -> str:
    return topic_id or EVERY_TOPIC


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to add, already checked."""

    channel: str
    address: str
    topic_id: str | None = None
    reason: str = SuppressionReason.MANUAL
    detail: str | None = None

    def row(self, source: str, user_id: str | None = None) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "address": self.address,
            "topic_id": _topic(self.topic_id),
            "reason": self.reason,
            "source": source,
            "detail": self.detail,
            "user_id": user_id,
        }


def new_entry(
    channel: str,
    address: str,
    *,
    topic_id: str | None = None,
    reason: str | None = None,
    detail: str | None = None,
    field: str = "address",
) -> NewEntry:
    """An entry to add, its address normalized and every value checked (400 naming the
    field otherwise)."""
    normalized = checked_address(channel, address, field)
    reason = reason or SuppressionReason.MANUAL
    if reason not in SuppressionReason.ALL:
        raise BadRequest(
            f"{reason!r} is not a suppression reason. Use one of "
            f"{', '.join(SuppressionReason.ALL)}, or leave it out for MANUAL.",
            code="invalid_reason",
            field=_sibling(field, "reason"),
        )
    if topic_id is not None and (len(topic_id) > MAX_TOPIC_ID or "/" in topic_id):
        raise BadRequest(
            f"topic_id must be a topic id: up to {MAX_TOPIC_ID} characters, without `/`.",
            code="invalid_topic_id",
            field=_sibling(field, "topic_id"),
        )
    if detail is not None and len(detail) > MAX_DETAIL:
        raise BadRequest(
            f"detail is over {MAX_DETAIL} characters.",
            code="invalid_detail",
            field=_sibling(field, "detail"),
        )
    return NewEntry(channel, normalized, topic_id or None, reason, detail or None)


def add(
    session: Session, scope: InEnvironment, entries: Sequence[NewEntry], source: str
) -> tuple[int, list[Suppression]]:
    """Put the entries on the list; one already there keeps its reason and source. Returns
    how many were new, and every entry as stored."""
    repository = SuppressionRepository(session)
    unique = list({(e.channel, e.address, _topic(e.topic_id)): e for e in entries}.values())
    added = repository.add(scope, [entry.row(source) for entry in unique], utcnow())
    stored = {
        (row.channel, row.address, row.topic_id): row
        for row in repository.entries_for(
            scope.environment_id, {(e.channel, e.address) for e in unique}
        )
    }
    return added, [stored[(e.channel, e.address, _topic(e.topic_id))] for e in unique]


def remove(session: Session, scope: Scope, channel: str, address: str, topic_id: str | None) -> int:
    """Take the address off the list: every entry of it, or only the topic's when
    `topic_id` is given ("" for the entry that holds for every topic). 404 when there was
    none."""
    normalized = checked_address(channel, address, "address")
    removed = SuppressionRepository(session).delete(
        scope.environment_id, channel, normalized, topic_id
    )
    if not removed:
        scoped = f" for topic {topic_id!r}" if topic_id else ""
        raise NotFound(
            f"{normalized!r} is not on the {channel} suppression list{scoped} of this "
            "environment. List the entries with GET /suppressions?address=…",
            code="suppression_not_found",
            field="address",
        )
    return removed


def page(
    session: Session,
    scope: Scope,
    *,
    channel: str | None,
    address_prefix: str | None,
    topic_id: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Suppression]:
    """One page of the list, oldest entry first. The address prefix is normalized as the
    channel's addresses are (an email prefix lower-cased); without a channel, an address
    starting with the prefix as typed or as any channel normalizes it matches."""
    if channel is not None and channel not in CHANNELS:
        raise BadRequest(
            f"{channel!r} is not a channel. Use one of {', '.join(CHANNELS)}.",
            code="invalid_channel",
            field="channel",
        )
    prefixes: list[str] = []
    if address_prefix and address_prefix.strip():
        kinds = [channel] if channel is not None else ["", "email", "sms"]
        prefixes = sorted({normalize(kind, address_prefix) for kind in kinds} - {""})
    return SuppressionRepository(session).page(
        scope.environment_id,
        channel=channel,
        address_prefixes=prefixes,
        topic_id=topic_id,
        after_id=after_id,
        limit=limit,
    )


# -- the send-time check ---------------------------------------------------------------------


def addresses_of(recipient: dict[str, Any]) -> dict[str, str]:
    """The recipient's address on each channel that has a single one, normalized."""
    found = {}
    for channel in CHANNELS:
        address = channel_address(channel, recipient)
        if isinstance(address, str) and address.strip():
            found[channel] = normalize(channel, address)
    return found


@dataclass(frozen=True, slots=True)
class Hit:
    """The entry that keeps a message off one channel."""

    channel: str
    address: str
    topic_id: str | None
    reason: str
    source: str
    detail: str | None
    since: str

    def describe(self) -> str:
        scope = f" for topic {self.topic_id!r}" if self.topic_id else ""
        why = f": {self.detail}" if self.detail else ""
        return (
            f"{self.channel} {self.address} is suppressed{scope} since {self.since} "
            f"({self.reason}, from {self.source}{why})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "address": self.address,
            "topic_id": self.topic_id,
            "reason": self.reason,
            "source": self.source,
        }


class Suppressed:
    """The entries of the addresses of a group of messages, read in one query per
    environment (`preload`); `hits` answers for one message without another query."""

    def __init__(self, session: Session) -> None:
        self.repository = SuppressionRepository(session)
        self.entries: dict[tuple[str, str, str], list[Suppression]] = {}
        self.read: set[tuple[str, str, str]] = set()

    def preload(self, environment_id: str, addresses: Iterable[tuple[str, str]]) -> None:
        wanted = {(environment_id, c, a) for c, a in addresses} - self.read
        if not wanted:
            return
        self.read |= wanted
        for entry in self.repository.entries_for(
            environment_id, {(channel, address) for _, channel, address in wanted}
        ):
            key = (environment_id, entry.channel, entry.address)
            self.entries.setdefault(key, []).append(entry)

    def hits(
        self, environment_id: str, recipient: dict[str, Any], topic_id: str | None
    ) -> dict[str, Hit]:
        """For each of the recipient's channels that the list holds for this message (an
        entry for every topic, or for the message's topic), the entry that does."""
        addresses = addresses_of(recipient)
        self.preload(environment_id, addresses.items())
        found = {}
        for channel, address in addresses.items():
            for entry in self.entries.get((environment_id, channel, address), []):
                if entry.topic_id == EVERY_TOPIC or entry.topic_id == topic_id:
                    found[channel] = _hit(entry)
                    if entry.topic_id == EVERY_TOPIC:
                        break
        return found


def _hit(entry: Suppression) -> Hit:
    return Hit(
        channel=entry.channel,
        address=entry.address,
        topic_id=entry.topic_id or None,
        reason=entry.reason,
        source=entry.source,
        detail=entry.detail,
        since=isoformat(entry.created_at) or "",
    )


# -- what vendors report ----------------------------------------------------------------------


def apply_feedback(
    session: Session,
    scope: InEnvironment,
    channel: str,
    recipient: dict[str, Any],
    *,
    outcome: str,
    bounce: str | None,
    provider: str,
    detail: str,
    soft_bounce_limit: int,
) -> Hit | None:
    """What a vendor's report about a delivery (to `recipient` on `channel`) does to the
    list: `outcome` "bounced" hard, or "complained", suppresses the address; "bounced" soft
    counts one more soft bounce in a row, and suppresses it at `soft_bounce_limit` (0:
    never); "delivered" ends the row. Returns the entry when this report made one."""
    address = channel_address(channel, recipient)
    if not isinstance(address, str) or not address.strip():
        return None
    address = normalize(channel, address)
    repository = SuppressionRepository(session)
    if outcome == "delivered":
        repository.end_soft_bounces(scope.environment_id, channel, address)
        return None
    reason = None
    if outcome == "complained":
        reason = SuppressionReason.COMPLAINT
    elif outcome == "bounced" and bounce == "hard":
        reason = SuppressionReason.HARD_BOUNCE
    elif outcome == "bounced" and bounce == "soft" and soft_bounce_limit > 0:
        count = repository.count_soft_bounce(scope, channel, address, utcnow())
        if count < soft_bounce_limit:
            return None
        repository.end_soft_bounces(scope.environment_id, channel, address)
        reason = SuppressionReason.SOFT_BOUNCES
        detail = f"{count} soft bounces in a row; the last: {detail}"
    if reason is None:
        return None
    entry = NewEntry(channel, address, None, reason, detail[:MAX_DETAIL] or None)
    added = repository.add(scope, [entry.row(provider)], utcnow())
    if not added:
        return None
    (stored,) = repository.find(scope.environment_id, channel, address, [EVERY_TOPIC])
    return _hit(stored)


# -- one-click unsubscribe --------------------------------------------------------------------


def record_unsubscribe(
    session: Session, scope: InEnvironment, user_id: str, topic_id: str
) -> Suppression | None:
    """The entry of a one-click unsubscribe: the user's email address (from their profile)
    suppressed for the topic. None when the profile has no email address."""
    profile = ProfileRepository(session).data_of_users({(scope.environment_id, user_id)})
    data = profile.get((scope.environment_id, user_id)) or {}
    address = data.get("email")
    if not isinstance(address, str) or not address.strip():
        return None
    entry = NewEntry(
        "email",
        normalize("email", address),
        topic_id,
        SuppressionReason.UNSUBSCRIBED,
        f"user {user_id!r} unsubscribed from topic {topic_id!r}",
    )
    repository = SuppressionRepository(session)
    repository.add(scope, [entry.row(SOURCE_UNSUBSCRIBE, user_id)], utcnow())
    found = repository.find(scope.environment_id, "email", entry.address, [topic_id])
    return found[0] if found else None


def lift_unsubscribe(session: Session, environment_id: str, user_id: str, topic_id: str) -> int:
    """The user opted in to the topic again (or their choice was deleted): the entries
    their one-click unsubscribes from it made go too."""
    return SuppressionRepository(session).delete_unsubscribes(
        environment_id, user_id, topic_id, SuppressionReason.UNSUBSCRIBED
    )


# -- CSV ----------------------------------------------------------------------------------------


def csv_row(entry: Suppression) -> list[str]:
    return [
        entry.channel,
        entry.address,
        entry.topic_id,
        entry.reason,
        entry.source,
        entry.detail or "",
        isoformat(entry.created_at) or "",
    ]


def export_csv(database: Database, scope: Scope) -> Iterator[str]:
    """The environment's whole list as CSV (a header, then an entry a line, oldest first),
    read page by page in one read transaction."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def drain() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield drain()
    with database.read() as session:
        repository = SuppressionRepository(session)
        after_id = None
        while True:
            rows = repository.page(
                scope.environment_id,
                channel=None,
                address_prefixes=[],
                topic_id=None,
                after_id=after_id,
                limit=EXPORT_PAGE,
            )
            for row in rows:
                writer.writerow(csv_row(row))
            if rows:
                yield drain()
            if len(rows) < EXPORT_PAGE:
                return
            after_id = rows[-1].id


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The CSV is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB. Split it and import the "
        "parts one after the other.",
        code="csv_too_large",
        field="file",
    )


def parse_csv(data: bytes) -> list[NewEntry]:
    """The entries of a CSV file: a header row naming at least `channel` and `address`
    (`reason`, `topic_id` and `detail` are read when present; other columns, such as an
    export's `source` and `created_at`, are ignored), then an entry a row. A file with a bad
    row imports nothing: the 400 names each bad row by its line number."""
    reader = csv.reader(io.StringIO(_csv_text(data), newline=""))
    position = _csv_columns(reader)
    entries: list[NewEntry] = []
    errors: list[tuple[int, str]] = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(value.strip() for value in values):
                continue
            if len(entries) + len(errors) >= MAX_IMPORT_ROWS:
                raise BadRequest(
                    f"The CSV has more than {MAX_IMPORT_ROWS:,} rows. Split it and import the "
                    "parts one after the other.",
                    code="csv_too_many_rows",
                    field=f"line {line}",
                )

            def cell(name: str, row: list[str] = values) -> str | None:
                index = position.get(name)
                if index is None or index >= len(row):
                    return None
                return row[index].strip() or None

            try:
                entries.append(
                    new_entry(
                        cell("channel") or "",
                        cell("address") or "",
                        topic_id=cell("topic_id"),
                        reason=cell("reason"),
                        detail=cell("detail"),
                    )
                )
            except BadRequest as exc:
                errors.append((line, exc.message))
    except csv.Error as exc:
        errors.append((reader.line_num, str(exc)))
    if errors:
        raise _invalid_rows(errors)
    return entries


def _csv_text(data: bytes) -> str:
    """The file as text: at most MAX_IMPORT_BYTES of UTF-8 (a BOM is dropped), without NUL."""
    if len(data) > MAX_IMPORT_BYTES:
        raise too_large()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The CSV is not UTF-8 text (byte {exc.start} is not). Save it as UTF-8 and "
            "import it again.",
            code="invalid_csv",
            field="file",
        ) from exc
    if "\x00" in text:
        raise BadRequest(
            "The CSV contains the NUL character, which Tidings cannot store. Remove it.",
            code="invalid_csv",
            field="file",
        )
    return text


def _csv_columns(reader: Iterator[list[str]]) -> dict[str, int]:
    """The header row: where each column Tidings reads stands."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadRequest(f"line 1: {exc}", code="invalid_csv", field="line 1") from exc
    columns = [name.strip().lower() for name in header or []]
    missing = [name for name in ("channel", "address") if name not in columns]
    if missing:
        raise BadRequest(
            "The CSV's first line must name its columns, with at least channel and address "
            f"(an export's header: {','.join(CSV_COLUMNS)}); {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing.",
            code="invalid_csv",
            field="line 1",
        )
    return {name: columns.index(name) for name in CSV_COLUMNS if name in columns}


def _invalid_rows(errors: list[tuple[int, str]]) -> BadRequest:
    """The 400 for a file with bad rows: how many, and the first few by line number."""
    shown = "; ".join(f"line {line}: {message}" for line, message in errors[:SHOWN_ERRORS])
    more = f"; and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
    rows = "row is" if len(errors) == 1 else "rows are"
    return BadRequest(
        f"{len(errors)} {rows} invalid, so nothing was imported. Fix them and import the "
        f"file again: {shown}{more}.",
        code="invalid_csv_rows",
        field=f"line {errors[0][0]}",
    )


@dataclass(frozen=True, slots=True)
class Imported:
    rows: int
    added: int

    @property
    def existing(self) -> int:
        return self.rows - self.added


def import_entries(
    session: Session, scope: Scope, entries: Sequence[NewEntry], source: str
) -> Imported:
    """Add the entries of a CSV file (`parse_csv`, outside the write transaction)."""
    unique = {(e.channel, e.address, _topic(e.topic_id)): e for e in entries}
    added = SuppressionRepository(session).add(
        scope, [entry.row(source) for entry in unique.values()], utcnow()
    )
    return Imported(rows=len(unique), added=added)
