"""Inbox rules: storing delivered messages, per-user tokens, reading and the live stream.

A user reads their inbox with an inbox token, not an API key: the token names one user in one
environment and expires. Courier issues JWTs for Inbox; Tidings issues an opaque token signed
with HMAC-SHA256 under a key derived from the server secret, which is all the server needs to
verify it and nothing a client needs to read.

Live updates are Server-Sent Events. A stream always reads new rows from the database; the
in-process `InboxBroker` only wakes it up early. A message stored by another process (a
separate `tidings worker`) reaches the stream through its once-a-second poll instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from tidings.db import Database
from tidings.errors import NotFound, Unauthorized, found
from tidings.inbox.repository import InboxRepository, Status
from tidings.inbox.schemas import InboxMessageView
from tidings.kit.time import isoformat, utcnow
from tidings.models import InboxMessage
from tidings.workspace.service import Scope, active_key_ids

TOKEN_PURPOSE = "tidings inbox tokens"
# v2 tokens name the API key they were issued with (v1 tokens, which did not, are refused).
_TOKEN_VERSION = "v2"

# How long a quiet stream waits before it looks at the database itself.
POLL_SECONDS = 1.0
# How often a quiet stream sends a comment, so proxies and browsers keep it open.
KEEPALIVE_SECONDS = 15.0
# The reconnection delay suggested to EventSource clients, in milliseconds.
RETRY_MILLISECONDS = 3000
# Rows sent per database read; a stream that is behind reads again at once.
STREAM_BATCH = 100


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class InboxUser:
    """What an inbox token opens: one user's inbox in one environment, until `expires_at` or
    until the API key it was issued with (`key_id`) is revoked."""

    environment_id: str
    user_id: str
    expires_at: datetime
    key_id: str


class InboxTokenError(Exception):
    """The token cannot be used; `code` says why (`invalid_inbox_token`, `expired_inbox_token`)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _token_key(secret: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=TOKEN_PURPOSE.encode()
    ).derive(secret)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, signed: str) -> bytes:
    return hmac.new(_token_key(secret), signed.encode(), hashlib.sha256).digest()


def inbox_token(
    secret: bytes, environment_id: str, user_id: str, expires_at: datetime, key_id: str
) -> str:
    """A token that opens `user_id`'s inbox in `environment_id` until `expires_at`, while the
    API key `key_id` that issued it is not revoked.

    `secret` is the server secret; the signing key is derived from it for this purpose only,
    so a token is useless for anything else. The expiry is kept to the whole second.
    """
    payload = orjson.dumps(
        {"env": environment_id, "sub": user_id, "exp": int(expires_at.timestamp()), "key": key_id}
    )
    signed = f"{_TOKEN_VERSION}.{_b64encode(payload)}"
    return f"{signed}.{_b64encode(_signature(secret, signed))}"


def verify_inbox_token(secret: bytes, token: str, now: datetime | None = None) -> InboxUser:
    """The user a token opens. Raises `InboxTokenError` for a forged, altered or expired token.

    The signature is compared in constant time before anything in the token is trusted.
    """
    invalid = InboxTokenError(
        "The inbox token is not valid: it is malformed, altered, or was signed by another "
        "server. Issue a new one with POST /inbox/tokens (with an API key) and send it as "
        "`Authorization: Bearer <token>`.",
        "invalid_inbox_token",
    )
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _TOKEN_VERSION:
        raise invalid
    try:
        presented = _b64decode(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    if not hmac.compare_digest(_signature(secret, f"{parts[0]}.{parts[1]}"), presented):
        raise invalid
    try:
        claims = orjson.loads(_b64decode(parts[1]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise invalid from exc
    if not isinstance(claims, dict):
        raise invalid
    environment_id, user_id, expiry = claims.get("env"), claims.get("sub"), claims.get("exp")
    key_id = claims.get("key")
    if not isinstance(environment_id, str) or not isinstance(user_id, str):
        raise invalid
    if not isinstance(key_id, str):
        raise invalid
    if not isinstance(expiry, int) or isinstance(expiry, bool):
        raise invalid
    try:
        expires_at = datetime.fromtimestamp(expiry, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise invalid from exc
    if (now or utcnow()) >= expires_at:
        raise InboxTokenError(
            f"The inbox token expired at {isoformat(expires_at)}. Issue a new one with "
            "POST /inbox/tokens.",
            "expired_inbox_token",
        )
    return InboxUser(environment_id, user_id, expires_at, key_id)


def issue_token(
    secret: bytes, scope: Scope, user_id: str, expires_in_seconds: int
) -> tuple[str, datetime]:
    """A token for `user_id` in the API key's environment, and when it expires."""
    expires_at = (utcnow() + timedelta(seconds=expires_in_seconds)).replace(microsecond=0)
    token = inbox_token(secret, scope.environment_id, user_id, expires_at, scope.key_id)
    return token, expires_at


def key_is_active(session: Session, user: InboxUser) -> bool:
    """Whether the API key that issued the user's token still exists and is not revoked."""
    return bool(active_key_ids(session, [user.key_id]))


def authenticate(database: Database, secret: bytes, token: str | None, field: str) -> InboxUser:
    """The token's user, or a 401 naming `field` (where the token should have been): for a
    missing, forged or expired token, or one issued with an API key since revoked."""
    headers = {"WWW-Authenticate": 'Bearer realm="inbox"'}
    if not token:
        raise Unauthorized(
            "Missing inbox token. Issue one for the user with POST /inbox/tokens (with an API "
            "key) and send it as `Authorization: Bearer <token>`.",
            code="missing_inbox_token",
            field=field,
            headers=headers,
        )
    try:
        user = verify_inbox_token(secret, token)
    except InboxTokenError as exc:
        raise Unauthorized(exc.message, code=exc.code, field=field, headers=headers) from exc
    with database.read() as session:
        if not key_is_active(session, user):
            raise Unauthorized(
                "The API key this inbox token was issued with has been revoked, so the token "
                "no longer opens the inbox. Issue a new one with POST /inbox/tokens, with a "
                "current secret key.",
                code="revoked_inbox_token",
                field=field,
                headers=headers,
            )
    return user


# ---------------------------------------------------------------- live notification


class Subscription:
    """One open stream, waiting on its own event loop to be woken."""

    def __init__(self, environment_id: str, user_id: str) -> None:
        self.key = (environment_id, user_id)
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def wake(self) -> None:
        # A closed loop means the stream is gone: nothing to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """Wait until woken or `timeout` passes; True when woken. Clears the wake-up."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class InboxBroker:
    """In-process pub/sub that wakes a user's open inbox streams when a message is stored.

    `publish` may be called from any thread (job workers included), and should be called
    after the transaction that stored the message has committed: the woken stream reads the
    new row from the database. Streams in other processes are not woken; they find the row
    within `POLL_SECONDS` on their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[tuple[str, str], set[Subscription]] = {}

    def subscribe(self, environment_id: str, user_id: str) -> Subscription:
        """Register a stream; call from the stream's event loop, and `unsubscribe` when done."""
        subscription = Subscription(environment_id, user_id)
        with self._lock:
            self._subscriptions.setdefault(subscription.key, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscriptions = self._subscriptions.get(subscription.key)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[subscription.key]

    def publish(self, environment_id: str, user_id: str) -> int:
        """Wake every open stream of this user; returns how many there were."""
        with self._lock:
            subscriptions = list(self._subscriptions.get((environment_id, user_id), ()))
        for subscription in subscriptions:
            subscription.wake()
        return len(subscriptions)


# ---------------------------------------------------------------- storing and reading


def store(
    session: Session,
    environment_id: str,
    workspace_id: str,
    user_id: str,
    message_id: str,
    content: dict[str, Any],
    data: dict[str, Any],
) -> InboxMessage:
    """Put a delivered message in the user's inbox, once: the delivery pipeline calls this.

    `content` is the rendered inbox content (`title`, `body`, `action_url`); `data` is the
    message's `data`, handed to inbox clients as it is. Storing the same `message_id` in the
    same environment again (a retried or re-driven delivery) changes nothing and returns the
    row stored the first time. The row is flushed, not committed: commit the session, then
    call `InboxBroker.publish(environment_id, user_id)` to wake the user's open streams.
    """
    action_url = content.get("action_url")
    return InboxRepository(session).insert_once(
        {
            "workspace_id": workspace_id,
            "environment_id": environment_id,
            "user_id": user_id,
            "message_id": message_id,
            "title": str(content.get("title") or ""),
            "body": str(content.get("body") or ""),
            "action_url": str(action_url) if action_url else None,
            "data": data,
            "created_at": utcnow(),
        }
    )


def message_view(message: InboxMessage) -> InboxMessageView:
    return InboxMessageView(
        messageId=message.message_id,
        title=message.title,
        body=message.body,
        action_url=message.action_url,
        data=message.data,
        created=isoformat(message.created_at) or "",
        read=isoformat(message.read_at),
        archived=isoformat(message.archived_at),
    )


def list_messages(
    session: Session, user: InboxUser, status: Status | None, before_id: int | None, limit: int
) -> Sequence[InboxMessage]:
    return InboxRepository(session).page(
        user.environment_id, user.user_id, status, before_id, limit
    )


def count_unread(session: Session, user: InboxUser) -> int:
    return InboxRepository(session).count_unread(user.environment_id, user.user_id)


def _get(session: Session, user: InboxUser, message_id: str) -> InboxMessage:
    return found(
        InboxRepository(session).get(user.environment_id, user.user_id, message_id),
        NotFound(
            f"No inbox message {message_id!r} for this user. Use a `messageId` from "
            "GET /inbox/messages.",
            code="inbox_message_not_found",
            field="message_id",
        ),
    )


def mark_read(session: Session, user: InboxUser, message_id: str) -> InboxMessage:
    message = _get(session, user, message_id)
    if message.read_at is None:
        message.read_at = utcnow()
    return message


def mark_unread(session: Session, user: InboxUser, message_id: str) -> InboxMessage:
    message = _get(session, user, message_id)
    message.read_at = None
    return message


def archive(session: Session, user: InboxUser, message_id: str) -> InboxMessage:
    message = _get(session, user, message_id)
    if message.archived_at is None:
        message.archived_at = utcnow()
    return message


def mark_all_read(session: Session, user: InboxUser) -> int:
    """Mark every unread message of the user read, archived ones too; returns how many."""
    return InboxRepository(session).mark_all_read(user.environment_id, user.user_id, utcnow())


# ---------------------------------------------------------------- the stream


def _newest_id(database: Database, user: InboxUser) -> int:
    with database.read() as session:
        return InboxRepository(session).newest_id(user.environment_id, user.user_id)


def _events_after(
    database: Database, user: InboxUser, after_id: int
) -> list[tuple[int, str]] | None:
    """The next events, or None once the key that issued the user's token is revoked."""
    with database.read() as session:
        if not key_is_active(session, user):
            return None
        rows = InboxRepository(session).newer_than(
            user.environment_id, user.user_id, after_id, STREAM_BATCH
        )
        return [(row.id, server_sent_event(row)) for row in rows]


def server_sent_event(message: InboxMessage) -> str:
    """One `message` event; its `id` lets a reconnecting client resume after it."""
    data = orjson.dumps(message_view(message).model_dump()).decode()
    return f"event: message\nid: {message.id}\ndata: {data}\n\n"


async def stream(
    database: Database, broker: InboxBroker, user: InboxUser, after_id: int | None
) -> AsyncIterator[str]:
    """Server-Sent Events for the user's new messages, until the client leaves, the token
    expires, or the API key that issued it is revoked.

    Messages stored after `after_id` (a previous event's `id`) are sent first; without it, only
    messages stored from now on. The first chunk is sent once the stream is listening.
    """
    subscription = broker.subscribe(user.environment_id, user.user_id)
    try:
        if after_id is None:
            after_id = await asyncio.to_thread(_newest_id, database, user)
        yield f"retry: {RETRY_MILLISECONDS}\n: listening\n\n"
        last_sent = time.monotonic()
        while utcnow() < user.expires_at:
            events = await asyncio.to_thread(_events_after, database, user, after_id)
            if events is None:
                return
            for row_id, event in events:
                yield event
                after_id = row_id
            if events:
                last_sent = time.monotonic()
                if len(events) == STREAM_BATCH:
                    continue
            elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            until_keepalive = KEEPALIVE_SECONDS - (time.monotonic() - last_sent)
            await subscription.wait(max(0.0, min(POLL_SECONDS, until_keepalive)))
    finally:
        broker.unsubscribe(subscription)
