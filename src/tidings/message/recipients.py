"""Expanding `to` into one recipient per message.

`to` is one object or an array of them. Each object is one of:
- a user: `user_id`, with inline fields (`email`, `phone_number`, `data`, …) laid over the
  stored profile;
- an address without a user: `email`, `phone_number`, a push token, `webhook`, `slack`, …;
- a list: `list_id`;
- a list pattern: `list_pattern`, where `*` matches one dot-separated part and `**` (only at
  the end) any number of parts;
- a tenant: `tenant_id` without `user_id`: every member.

A user reached through several entries gets one message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.errors import BadRequest
from tidings.models import ListSubscription, RecipientList, TenantMembership

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


def pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = pattern.split(".")
    if any(part == "**" for part in parts[:-1]):
        raise BadRequest(
            f"list_pattern {pattern!r}: `**` may only be the last part, e.g. `acme.**`.",
            code="invalid_list_pattern",
            field="to.list_pattern",
        )
    expression = ""
    for index, part in enumerate(parts):
        separator = r"\." if index else ""
        if part == "**":
            expression += r"(?:\..+)?" if index else ".+"
        elif part == "*":
            expression += separator + r"[^.]+"
        else:
            expression += separator + re.escape(part)
    return re.compile(f"^{expression}$")


def _list_members(session: Session, environment_id: str, list_ids: list[str]) -> list[str]:
    if not list_ids:
        return []
    rows = session.scalars(
        select(ListSubscription.user_id)
        .where(
            ListSubscription.environment_id == environment_id,
            ListSubscription.list_id.in_(list_ids),
        )
        .order_by(ListSubscription.id)
    ).all()
    return list(rows)


def expand(
    session: Session, environment_id: str, to: dict[str, Any] | list[dict[str, Any]]
) -> list[Recipient]:
    entries = to if isinstance(to, list) else [to]
    if not entries:
        raise BadRequest("`message.to` is empty: name at least one recipient.", field="message.to")
    recipients: list[Recipient] = []
    seen_users: set[str] = set()

    def add_user(user_id: str, inline: dict[str, Any], source: dict[str, Any]) -> None:
        if user_id in seen_users:
            return
        seen_users.add(user_id)
        recipients.append(Recipient(user_id, {**inline, "user_id": user_id}, source))

    for index, entry in enumerate(entries):
        path = f"message.to[{index}]" if isinstance(to, list) else "message.to"
        if not isinstance(entry, dict):
            raise BadRequest(f"{path} must be an object.", field=path)
        inline = {
            key: value for key, value in entry.items() if key not in ("list_id", "list_pattern")
        }
        if entry.get("user_id") is not None:
            add_user(str(entry["user_id"]), inline, {"type": "user"})
        elif entry.get("list_id") is not None:
            list_id = str(entry["list_id"])
            exists = session.scalars(
                select(RecipientList.id).where(
                    RecipientList.environment_id == environment_id,
                    RecipientList.list_id == list_id,
                )
            ).first()
            if exists is None:
                raise BadRequest(
                    f"{path}.list_id: no list {list_id!r}. Create it with PUT /lists/{{id}}.",
                    code="unknown_list",
                    field=f"{path}.list_id",
                )
            extra = {k: v for k, v in inline.items() if k == "data"}
            for user_id in _list_members(session, environment_id, [list_id]):
                add_user(user_id, extra, {"type": "list", "list_id": list_id})
        elif entry.get("list_pattern") is not None:
            pattern = str(entry["list_pattern"])
            regex = pattern_regex(pattern)
            all_lists = session.scalars(
                select(RecipientList.list_id).where(RecipientList.environment_id == environment_id)
            ).all()
            matching = [list_id for list_id in all_lists if regex.match(list_id)]
            extra = {k: v for k, v in inline.items() if k == "data"}
            for user_id in _list_members(session, environment_id, matching):
                add_user(user_id, extra, {"type": "list_pattern", "list_pattern": pattern})
        elif entry.get("tenant_id") is not None:
            tenant_id = str(entry["tenant_id"])
            members = session.scalars(
                select(TenantMembership.user_id)
                .where(
                    TenantMembership.environment_id == environment_id,
                    TenantMembership.tenant_id == tenant_id,
                )
                .order_by(TenantMembership.id)
            ).all()
            extra = {k: v for k, v in inline.items() if k == "data"}
            for user_id in members:
                add_user(user_id, extra, {"type": "tenant", "tenant_id": tenant_id})
        elif any(entry.get(field) for field in ADDRESS_FIELDS):
            recipients.append(Recipient(None, inline, {"type": "address"}))
        else:
            raise BadRequest(
                f"{path} names no recipient: give `user_id`, an address such as `email` or "
                "`phone_number`, `list_id`, `list_pattern` or `tenant_id`.",
                code="invalid_recipient",
                field=path,
            )
    return recipients
