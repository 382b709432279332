"""Expanding `to` into one recipient per message.

`to` is one object or an array of them. Each object is one of:
- a user: `user_id`, with inline fields (`email`, `phone_number`, `data`, …) laid over the
  stored profile;
- an address without a user: `email`, `phone_number`, a push token, `webhook`, `slack`, …;
- a list: `list_id`;
- a list pattern: `list_pattern`, where `*` matches one dot-separated part and `**` (only at
  the end) any number of parts;
- a tenant: `tenant_id` without `user_id`: every member;
- an audience: `audience_id`: its current members.

A user reached through several entries gets one message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.audience.service import member_ids as audience_members
from tidings.errors import BadRequest
from tidings.list.repository import ListRepository
from tidings.list.service import pattern_regex
from tidings.tenant.repository import TenantRepository

ADDRESS_FIELDS = (
    "email",
    "phone_number",
    "firebaseToken",
    "expo",
    "webhook",
    "slack",
    "discord",
    "ms_teams",
)


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str | None
    to: dict[str, Any]
    source: dict[str, Any]


def expand(
    session: Session, environment_id: str, to: dict[str, Any] | list[dict[str, Any]]
) -> list[Recipient]:
    entries = to if isinstance(to, list) else [to]
    if not entries:
        raise BadRequest("`message.to` is empty: name at least one recipient.", field="message.to")
    recipients: list[Recipient] = []
    seen_users: set[str] = set()
    for index, entry in enumerate(entries):
        path = f"message.to[{index}]" if isinstance(to, list) else "message.to"
        for recipient in _entry_recipients(session, environment_id, entry, path):
            if recipient.user_id is None:
                recipients.append(recipient)
            elif recipient.user_id not in seen_users:
                seen_users.add(recipient.user_id)
                recipients.append(recipient)
    return recipients


def _entry_recipients(
    session: Session, environment_id: str, entry: dict[str, Any], path: str
) -> list[Recipient]:
    """The recipients one entry of `to` names, users reached twice included."""
    if not isinstance(entry, dict):
        raise BadRequest(f"{path} must be an object.", field=path)
    inline = {
        key: value
        for key, value in entry.items()
        if key not in ("list_id", "list_pattern", "audience_id")
    }
    if entry.get("user_id") is not None:
        user_id = str(entry["user_id"])
        return [Recipient(user_id, {**inline, "user_id": user_id}, {"type": "user"})]
    for key, (kind, members) in GROUPS.items():
        if entry.get(key) is not None:
            group = str(entry[key])
            users = members(session, environment_id, group, f"{path}.{key}")
            source = {"type": kind, key: group}
            # A group's members get only the entry's `data`, not its addresses.
            extra = {name: value for name, value in inline.items() if name == "data"}
            return [Recipient(user_id, {**extra, "user_id": user_id}, source) for user_id in users]
    if any(entry.get(field) for field in ADDRESS_FIELDS):
        return [Recipient(None, inline, {"type": "address"})]
    raise BadRequest(
        f"{path} names no recipient: give `user_id`, an address such as `email` or "
        "`phone_number`, `list_id`, `list_pattern`, `audience_id` or `tenant_id`.",
        code="invalid_recipient",
        field=path,
    )


def _list_members(session: Session, environment_id: str, list_id: str, field: str) -> list[str]:
    lists = ListRepository(session)
    if not lists.exists(environment_id, list_id):
        raise BadRequest(
            f"{field}: no list {list_id!r}. Create it with PUT /lists/{{id}}.",
            code="unknown_list",
            field=field,
        )
    return lists.member_ids(environment_id, [list_id])


def _pattern_members(session: Session, environment_id: str, pattern: str, field: str) -> list[str]:
    regex = pattern_regex(pattern)
    lists = ListRepository(session)
    matching = [list_id for list_id in lists.list_ids(environment_id) if regex.match(list_id)]
    return lists.member_ids(environment_id, matching)


def _tenant_members(session: Session, environment_id: str, tenant_id: str, field: str) -> list[str]:
    return TenantRepository(session).member_ids(environment_id, tenant_id)


# The entries of `to` that name a group, by the key that names it, in the order they are
# looked for: the `type` of the members' source, and how the members are read (`field` names
# the key in errors).
GROUPS: dict[str, tuple[str, Callable[[Session, str, str, str], list[str]]]] = {
    "list_id": ("list", _list_members),
    "list_pattern": ("list_pattern", _pattern_members),
    "audience_id": ("audience", audience_members),
    "tenant_id": ("tenant", _tenant_members),
}
