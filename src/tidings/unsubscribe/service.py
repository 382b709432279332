"""A one-click unsubscribe (the links preference.service signs): the user opted out of the
topic, the address on the suppression list, and the unsubscribe counted in the metrics
against the message it came from. Above message, whose table that message is read from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tidings.analytics.repository import MetricRepository, dimensions
from tidings.kit.time import utcnow
from tidings.message.repository import MessageRepository
from tidings.models import Metric, SubscriptionTopic, UserPreference
from tidings.preference.repository import PreferenceRepository
from tidings.preference.service import OPTED_OUT, REQUIRED
from tidings.suppression.service import record_unsubscribe

# One-click unsubscribe links go out in email (List-Unsubscribe), and the address it
# suppresses is the email address: its count is the email channel's.
UNSUBSCRIBE_CHANNEL = "email"


def count_unsubscribe(session: Session, environment_id: str, user_id: str, topic_id: str) -> None:
    """Count a one-click unsubscribe (one that opted the user out) against the user's newest
    sent message of a template of the topic: its template and automation; with no such
    message, against none."""
    message = MessageRepository(session).latest_sent_of_topic(environment_id, user_id, topic_id)
    template, automation = dimensions(message) if message is not None else ("", "")
    MetricRepository(session).count(
        environment_id, utcnow(), template, automation, UNSUBSCRIBE_CHANNEL, Metric.UNSUBSCRIBED
    )


@dataclass(frozen=True, slots=True)
class UnsubscribeState:
    """What an unsubscribe page shows about the link's topic."""

    topic_name: str
    required: bool
    opted_out: bool


def _state(topic: SubscriptionTopic, preference: UserPreference | None) -> UnsubscribeState:
    status = preference.status if preference is not None else topic.default_status
    return UnsubscribeState(
        topic_name=topic.name,
        required=topic.default_status == REQUIRED,
        opted_out=status == OPTED_OUT and topic.default_status != REQUIRED,
    )


def unsubscribe_state(
    session: Session, environment_id: str, user_id: str, topic_id: str
) -> UnsubscribeState | None:
    """The topic's name and the user's status, for the confirmation page; None if no topic."""
    repository = PreferenceRepository(session)
    topic = repository.topic(environment_id, topic_id)
    if topic is None:
        return None
    return _state(topic, repository.preference(environment_id, user_id, topic_id))


def unsubscribe(
    session: Session, environment_id: str, user_id: str, topic_id: str
) -> UnsubscribeState | None:
    """Opt the user out of the topic, keeping their routing choice; REQUIRED topics unchanged.

    The user's email address (their profile's) also goes on the suppression list for the
    topic (reason UNSUBSCRIBED, `suppression.service.record_unsubscribe`), so that a send to
    that address without the user id (or under another) is kept back too; opting in again
    lifts it. None when the topic no longer exists. Repeating it changes nothing. An
    unsubscribe that opts the user out is counted in the metrics (`count_unsubscribe`).
    """
    repository = PreferenceRepository(session)
    topic = repository.topic(environment_id, topic_id)
    if topic is None:
        return None
    preference = repository.preference(environment_id, user_id, topic_id)
    if topic.default_status != REQUIRED and (preference is None or preference.status != OPTED_OUT):
        count_unsubscribe(session, environment_id, user_id, topic_id)
        preference = repository.save_preference(
            topic.workspace_id,
            environment_id,
            user_id,
            topic_id,
            OPTED_OUT,
            preference.has_custom_routing if preference is not None else False,
            list(preference.custom_routing or []) if preference is not None else [],
        )
    if topic.default_status != REQUIRED:
        record_unsubscribe(session, topic, user_id, topic_id)
    return _state(topic, preference)
