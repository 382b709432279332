"""Preference rules: subscription topics, each user's choice per topic, and unsubscribe links.

A topic's `default_status` applies to every user who has made no choice: OPTED_IN sends,
OPTED_OUT does not, REQUIRED always sends and cannot be opted out of. A user's own status
(OPTED_IN or OPTED_OUT) wins over the default, and may name the channels the topic is
delivered on (`has_custom_routing` + `custom_routing`), which REQUIRED topics honour too.

Unsubscribe links carry a signed token `v1.<payload>.<mac>`: the payload is the base64url
JSON array `[environment_id, user_id, topic_id]`, the MAC is HMAC-SHA256 over `v1.<payload>`
with a key derived from the server secret (`unsubscribe_key`): `kit.crypto.sign_fields`, the
one format of Tidings' signed links. The version prefix names the key and format, so a later
version can come with a new key while old links keep working for as long as their version is
still accepted. Links do not expire: an unsubscribe link in an old email must keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.errors import BadRequest, Conflict, found, not_in_environment
from tidings.kit.crypto import derive_key, sign_fields, verify_fields
from tidings.kit.pagination import Page, page
from tidings.kit.time import utcnow
from tidings.models import SubscriptionTopic, UserPreference
from tidings.preference.repository import PreferenceRepository
from tidings.preference.schemas import TopicPreference
from tidings.provider.base import CHANNELS
from tidings.suppression.service import lift_unsubscribe
from tidings.workspace.service import Scope

OPTED_IN = "OPTED_IN"
OPTED_OUT = "OPTED_OUT"
REQUIRED = "REQUIRED"
UNSUBSCRIBED = "UNSUBSCRIBED"

# Courier calls the chat channel `direct_message`; Tidings stores it as `chat`.
CHANNEL_ALIASES = {"direct_message": "chat"}

TOKEN_VERSION = "v1"
_KEY_INFO = b"tidings unsubscribe token v1"


_topic_not_found = not_in_environment(
    "subscription topic",
    "PUT /preferences/topics/{topic_id}, or list them with GET /preferences/topics",
    code="topic_not_found",
    field="topic_id",
)


# Topics


def get_topic(session: Session, scope: Scope, topic_id: str) -> SubscriptionTopic:
    return found(
        PreferenceRepository(session).topic(scope.environment_id, topic_id),
        _topic_not_found(topic_id),
    )


def save_topic(
    session: Session, scope: Scope, topic_id: str, name: str, default_status: str
) -> tuple[SubscriptionTopic, bool]:
    """Create the topic or replace its name and default; True when it was created."""
    topic, created = PreferenceRepository(session).topic_for_update(
        scope.workspace_id, scope.environment_id, topic_id, name, default_status
    )
    if not created:
        topic.name = name
        topic.default_status = default_status
        topic.updated_at = utcnow()
    return topic, created


def list_topics(
    session: Session, scope: Scope, after_id: int | None, limit: int
) -> Sequence[SubscriptionTopic]:
    return PreferenceRepository(session).topics(scope.environment_id, after_id, limit)


def delete_topic(session: Session, scope: Scope, topic_id: str) -> None:
    """Delete the topic and its user preferences; refused while a template still uses it.

    Deleting a topic that templates name would silently resume sending to users who opted
    out, so the templates must be moved off it first.
    """
    repository = PreferenceRepository(session)
    if repository.topic(scope.environment_id, topic_id) is None:
        raise _topic_not_found(topic_id)
    users = repository.notifications_using(scope.environment_id, topic_id, limit=6)
    if users:
        shown = ", ".join(repr(name) for name in users[:5])
        more = " and more" if len(users) > 5 else ""
        raise Conflict(
            f"Subscription topic {topic_id!r} is used by notifications {shown}{more}. "
            "Set their topic_id to another topic or to null, then delete the topic.",
            code="topic_in_use",
            field="topic_id",
        )
    repository.delete_topic(scope.environment_id, topic_id)


# User preferences


def _view(topic: SubscriptionTopic, preference: UserPreference | None) -> TopicPreference:
    if preference is None:
        return TopicPreference(
            topic_id=topic.topic_id,
            topic_name=topic.name,
            status=topic.default_status,
            default_status=topic.default_status,
            has_custom_routing=False,
            custom_routing=[],
        )
    return TopicPreference(
        topic_id=topic.topic_id,
        topic_name=topic.name,
        status=preference.status,
        default_status=topic.default_status,
        has_custom_routing=preference.has_custom_routing,
        custom_routing=list(preference.custom_routing or []),
    )


def list_preferences(
    session: Session, scope: Scope, user_id: str, after_id: int | None, limit: int
) -> Page[TopicPreference]:
    """One page of every topic with the user's status (the default where they made no
    choice)."""
    repository = PreferenceRepository(session)
    topics = page(repository.topics(scope.environment_id, after_id, limit + 1), limit)
    chosen = repository.preferences_for(
        scope.environment_id, user_id, [topic.topic_id for topic in topics.rows]
    )
    return Page([_view(topic, chosen.get(topic.topic_id)) for topic in topics.rows], topics.cursor)


def get_preference(session: Session, scope: Scope, user_id: str, topic_id: str) -> TopicPreference:
    topic = get_topic(session, scope, topic_id)
    preference = PreferenceRepository(session).preference(scope.environment_id, user_id, topic_id)
    return _view(topic, preference)


def _channels(custom_routing: Sequence[str]) -> list[str]:
    channels: list[str] = []
    for index, entry in enumerate(custom_routing):
        channel = CHANNEL_ALIASES.get(entry, entry)
        if channel not in CHANNELS:
            raise BadRequest(
                f"{entry!r} is not a channel. custom_routing entries must be channel names: "
                f"{', '.join(CHANNELS)} (direct_message is accepted for chat).",
                code="invalid_channel",
                field=f"topic.custom_routing.{index}",
            )
        if channel not in channels:
            channels.append(channel)
    return channels


def set_preference(
    session: Session,
    scope: Scope,
    user_id: str,
    topic_id: str,
    status: str,
    has_custom_routing: bool,
    custom_routing: Sequence[str],
) -> TopicPreference:
    """Replace the user's choice for the topic, routing fields included (as Courier does)."""
    if status not in (OPTED_IN, OPTED_OUT):
        raise BadRequest(
            f"{status} is a topic's default, not a user's choice. Send status OPTED_IN or "
            "OPTED_OUT.",
            code="invalid_status",
            field="topic.status",
        )
    channels = _channels(custom_routing)
    if has_custom_routing and not channels:
        raise BadRequest(
            "has_custom_routing is true but custom_routing names no channel. List at least "
            f"one of {', '.join(CHANNELS)}, or set has_custom_routing to false.",
            code="invalid_custom_routing",
            field="topic.custom_routing",
        )
    topic = get_topic(session, scope, topic_id)
    if topic.default_status == REQUIRED and status == OPTED_OUT:
        raise BadRequest(
            f"Subscription topic {topic_id!r} is REQUIRED, so users cannot opt out of it. Send "
            "status OPTED_IN (custom routing still applies), or change the topic's "
            "default_status.",
            code="topic_required",
            field="topic.status",
        )
    preference = PreferenceRepository(session).save_preference(
        scope.workspace_id,
        scope.environment_id,
        user_id,
        topic_id,
        status,
        has_custom_routing,
        channels,
    )
    if status == OPTED_IN:
        # Opted in again: a one-click unsubscribe's suppression entry goes with the opt-out.
        lift_unsubscribe(session, scope.environment_id, user_id, topic_id)
    return _view(topic, preference)


def delete_preference(session: Session, scope: Scope, user_id: str, topic_id: str) -> None:
    """Forget the user's choice: the topic's default applies again."""
    get_topic(session, scope, topic_id)
    PreferenceRepository(session).delete_preference(scope.environment_id, user_id, topic_id)
    lift_unsubscribe(session, scope.environment_id, user_id, topic_id)


# The send-time decision


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a message may be sent, and on which channels.

    - `allowed` False: the message must end FILTERED with reason `reason` (UNSUBSCRIBED).
    - `channels`: the user's custom routing, in their order, when they set one; None means
      "route as usual".
    - `detail`: one sentence for the message log saying why.
    """

    allowed: bool
    channels: tuple[str, ...] | None = None
    reason: str | None = None
    detail: str = ""


def decide(
    session: Session, environment_id: str, user_id: str | None, topic_id: str | None
) -> Decision:
    """Apply the recipient's preferences to a message of the template's topic.

    Rules, in order:
    - no topic: allowed;
    - a topic id that names no topic in the environment: allowed, as if there were no topic;
    - the user's own preference, when `user_id` is given and they made a choice, wins over
      the topic's default;
    - REQUIRED topics are always allowed;
    - otherwise OPTED_OUT is refused with reason UNSUBSCRIBED, OPTED_IN is allowed;
    - address-only recipients (no `user_id`) get the topic's default.
    Custom routing (`channels`) comes from the user's preference when `has_custom_routing`
    is set, REQUIRED topics included. Reads only; never writes.
    """
    if topic_id is None:
        return Decision(allowed=True, detail="The template has no subscription topic.")
    repository = PreferenceRepository(session)
    topic = repository.topic(environment_id, topic_id)
    if topic is None:
        return Decision(
            allowed=True,
            detail=f"Subscription topic {topic_id!r} does not exist; preferences not applied.",
        )
    preference = (
        repository.preference(environment_id, user_id, topic_id) if user_id is not None else None
    )
    channels = None
    if preference is not None and preference.has_custom_routing and preference.custom_routing:
        channels = tuple(preference.custom_routing)
    if topic.default_status == REQUIRED:
        return Decision(
            allowed=True,
            channels=channels,
            detail=f"Subscription topic {topic_id!r} is REQUIRED.",
        )
    if preference is not None:
        status = preference.status
        why = f"User {user_id!r} chose {status} for subscription topic {topic_id!r}."
    else:
        status = topic.default_status
        who = (
            "the recipient has no user_id"
            if user_id is None
            else f"user {user_id!r} made no choice"
        )
        why = f"Subscription topic {topic_id!r} is {status} by default and {who}."
    if status == OPTED_OUT:
        return Decision(allowed=False, reason=UNSUBSCRIBED, detail=why)
    return Decision(allowed=True, channels=channels, detail=why)


# Signed unsubscribe links


def unsubscribe_key(server_secret: bytes) -> bytes:
    """The 32-byte HMAC key for unsubscribe tokens, derived (HKDF-SHA256) from the server secret.

    The runtime derives it once from `load_or_create_secret(...)` and passes it to
    `unsubscribe_token` and `verify_unsubscribe_token`.
    """
    return derive_key(server_secret, _KEY_INFO)


def unsubscribe_token(secret: bytes, environment_id: str, user_id: str, topic_id: str) -> str:
    """A URL-safe token that lets its holder opt `user_id` out of `topic_id`, and nothing else.

    `secret` is the key from `unsubscribe_key`. The token never expires.
    """
    return sign_fields(secret, TOKEN_VERSION, (environment_id, user_id, topic_id))


def verify_unsubscribe_token(secret: bytes, token: str) -> tuple[str, str, str] | None:
    """`(environment_id, user_id, topic_id)` when the token is genuine, else None.

    The MAC is checked in constant time before the payload is read. Never raises.
    """
    fields = verify_fields(secret, TOKEN_VERSION, token, 3)
    if fields is None:
        return None
    return fields[0], fields[1], fields[2]


def public_base_url(settings: Settings) -> str:
    """Where recipients reach this server: `TIDINGS_PUBLIC_URL`, else `http://host:port`."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def unsubscribe_url(base_url: str, token: str) -> str:
    """The one-click unsubscribe link for a token (GET shows a page, POST unsubscribes)."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def unsubscribe_headers(url: str) -> dict[str, str]:
    """The RFC 8058 one-click unsubscribe headers for an email carrying this link."""
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
