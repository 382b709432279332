"""Lookups a unit of work remembers (event processing asks them once per job), and forgets
when the same unit of work changes what they answer."""

from __future__ import annotations

from tests.conftest import Keys
from tidings.automation import service
from tidings.kit.time import utcnow
from tidings.notification.repository import NotificationRepository
from tidings.runtime import Runtime
from tidings.workspace.service import Scope, resolve_keys

WELCOME = {
    "name": "Welcome",
    "triggers": [{"source": "segment", "event": "identify"}],
    "steps": [{"action": "send", "content": {"title": "Hi", "body": "Welcome"}}],
}


def _scope(runtime: Runtime, key: str) -> Scope:
    with runtime.database.read() as session:
        return resolve_keys(session, runtime.cipher, [key])[key]


def test_triggered_by_is_asked_once_and_forgotten_when_an_automation_is_saved(
    runtime: Runtime, keys: Keys
) -> None:
    scope = _scope(runtime, keys.test)
    with runtime.database.write() as (session, _):
        env = scope.environment_id
        assert service.triggered_by(session, env, "segment", "identify") == []
        service.save(session, scope, "welcome", WELCOME, outbound=runtime.outbound)
        found = service.triggered_by(session, env, "segment", "identify")
        assert [automation.automation_id for automation, _ in found] == ["welcome"]
        assert service.triggered_by(session, env, "segment", "identify") is found


def test_a_template_found_is_remembered_until_deleted(runtime: Runtime, keys: Keys) -> None:
    scope = _scope(runtime, keys.test)
    with runtime.database.write() as (session, _):
        repository = NotificationRepository(session)
        assert not repository.exists(scope, "welcome")
        template = {
            "name": "Welcome",
            "content": {"title": "Hi"},
            "routing": None,
            "strict": False,
            "topic_id": None,
            "tracking": None,
        }
        repository.save(scope, "welcome", template, utcnow(), saved_by=None)
        assert repository.exists(scope, "welcome")
        assert repository.delete(scope, "welcome")
        assert not repository.exists(scope, "welcome")
