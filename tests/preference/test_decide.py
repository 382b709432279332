"""`decide`: what the message pipeline asks before sending a template of a topic."""

from __future__ import annotations

import pytest

from tests.preference.conftest import Scopes
from tidings.preference.service import Decision, decide, save_topic, set_preference
from tidings.runtime import Runtime
from tidings.workspace.service import Scope


@pytest.fixture
def topics(runtime: Runtime, scopes: Scopes) -> Scope:
    scope = scopes.test
    with runtime.database.write() as (session, _):
        save_topic(session, scope, "digest", "Digest", "OPTED_IN")
        save_topic(session, scope, "promos", "Promotions", "OPTED_OUT")
        save_topic(session, scope, "security", "Security", "REQUIRED")
    return scope


def choose(
    runtime: Runtime,
    scope: Scope,
    topic_id: str,
    status: str,
    channels: list[str] | None = None,
    user_id: str = "u1",
) -> None:
    with runtime.database.write() as (session, _):
        set_preference(
            session, scope, user_id, topic_id, status, channels is not None, channels or []
        )


def decided(runtime: Runtime, scope: Scope, user_id: str | None, topic_id: str | None) -> Decision:
    with runtime.database.read() as session:
        return decide(session, scope.environment_id, user_id, topic_id)


def test_no_topic_is_allowed(runtime: Runtime, topics: Scope) -> None:
    decision = decided(runtime, topics, "u1", None)
    assert (decision.allowed, decision.channels, decision.reason) == (True, None, None)


def test_topic_default_applies_without_a_choice(runtime: Runtime, topics: Scope) -> None:
    assert decided(runtime, topics, "u1", "digest").allowed is True
    decision = decided(runtime, topics, "u1", "promos")
    assert (decision.allowed, decision.reason) == (False, "UNSUBSCRIBED")
    assert decision.detail == (
        "Subscription topic 'promos' is OPTED_OUT by default and user 'u1' made no choice."
    )


def test_the_user_choice_wins_over_the_default(runtime: Runtime, topics: Scope) -> None:
    choose(runtime, topics, "digest", "OPTED_OUT")
    choose(runtime, topics, "promos", "OPTED_IN")
    digest = decided(runtime, topics, "u1", "digest")
    assert (digest.allowed, digest.reason) == (False, "UNSUBSCRIBED")
    assert decided(runtime, topics, "u1", "promos").allowed is True
    assert decided(runtime, topics, "u2", "digest").allowed is True
    assert decided(runtime, topics, "u2", "promos").allowed is False


def test_required_is_always_allowed_and_keeps_custom_routing(
    runtime: Runtime, topics: Scope
) -> None:
    assert decided(runtime, topics, "u1", "security") == Decision(
        allowed=True, detail="Subscription topic 'security' is REQUIRED."
    )
    choose(runtime, topics, "security", "OPTED_IN", ["sms", "push"])
    decision = decided(runtime, topics, "u1", "security")
    assert (decision.allowed, decision.channels) == (True, ("sms", "push"))


def test_custom_routing_comes_with_an_opt_in(runtime: Runtime, topics: Scope) -> None:
    choose(runtime, topics, "promos", "OPTED_IN", ["email"])
    decision = decided(runtime, topics, "u1", "promos")
    assert (decision.allowed, decision.channels) == (True, ("email",))
    choose(runtime, topics, "promos", "OPTED_OUT", ["email"])
    decision = decided(runtime, topics, "u1", "promos")
    assert (decision.allowed, decision.channels, decision.reason) == (False, None, "UNSUBSCRIBED")


def test_address_only_recipients_get_the_topic_default(runtime: Runtime, topics: Scope) -> None:
    choose(runtime, topics, "digest", "OPTED_OUT")
    assert decided(runtime, topics, None, "digest").allowed is True
    assert decided(runtime, topics, None, "promos").allowed is False
    assert decided(runtime, topics, None, "security").allowed is True


def test_a_topic_that_does_not_exist_applies_no_preferences(
    runtime: Runtime, topics: Scope
) -> None:
    decision = decided(runtime, topics, "u1", "ghost")
    assert decision.allowed is True
    assert "does not exist" in decision.detail


def test_decide_reads_only_its_environment(runtime: Runtime, topics: Scope, scopes: Scopes) -> None:
    choose(runtime, topics, "digest", "OPTED_OUT")
    with runtime.database.write() as (session, _):
        save_topic(session, scopes.production, "promos", "Promotions", "OPTED_IN")
    assert decided(runtime, scopes.production, "u1", "digest").allowed is True
    assert decided(runtime, scopes.production, "u1", "promos").allowed is True
    assert decided(runtime, topics, "u1", "promos").allowed is False
