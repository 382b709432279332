"""The official `trycourier` Python SDK, pointed at a live Tidings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from courier import BadRequestError, ConflictError, Courier, NotFoundError

from tests.conftest import LiveServer, cli_keys, wait_for
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings


@pytest.fixture
def courier(live_server: LiveServer, settings: Settings) -> Courier:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    return Courier(api_key=key, base_url=live_server.url, max_retries=0)


def test_sdk_sends_a_message_and_reads_its_status(
    courier: Courier, live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    headers = {"Authorization": f"Bearer {courier.api_key}"}
    httpx.put(
        f"{live_server.url}/providers/smtp",
        json={"config": smtp_sink.provider_config()},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).raise_for_status()
    courier.profiles.create("u1", profile={"email": "ada@example.org", "name": "Ada"})
    assert courier.profiles.retrieve("u1").profile == {"email": "ada@example.org", "name": "Ada"}

    sent = courier.send.message(
        message={
            "to": {"user_id": "u1"},
            "content": {"title": "Hello {{ profile.name }}", "body": "Your code is {{ code }}"},
            "data": {"code": "1234"},
            "routing": {"method": "single", "channels": ["email"]},
        },
        idempotency_key="sdk-test-1",
    )
    again = courier.send.message(
        message={
            "to": {"user_id": "u1"},
            "content": {"title": "Hello {{ profile.name }}", "body": "Your code is {{ code }}"},
            "data": {"code": "1234"},
            "routing": {"method": "single", "channels": ["email"]},
        },
        idempotency_key="sdk-test-1",
    )
    assert sent.request_id == again.request_id

    def status() -> Any:
        message = courier.messages.retrieve(sent.request_id)
        return message if message.status == "SENT" else None

    message = wait_for(status, what="SENT through the SDK")
    assert message.recipient == "u1"
    assert message.enqueued > 0
    assert message.sent is not None
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Hello Ada"

    history = courier.messages.history(sent.request_id)
    assert [entry["type"] for entry in history.results][:2] == ["ENQUEUED", "PROFILE_LOADED"]

    with pytest.raises(NotFoundError):
        courier.messages.retrieve("msg_does_not_exist")


def test_sdk_invokes_automations_and_reads_their_runs(
    courier: Courier, live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    headers = {"Authorization": f"Bearer {courier.api_key}"}
    httpx.put(
        f"{live_server.url}/providers/smtp",
        json={"config": smtp_sink.provider_config()},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).raise_for_status()
    httpx.put(
        f"{live_server.url}/automations/thanks",
        json={
            "steps": [
                {"action": "send", "content": {"title": "Thanks, {{ data.name }}", "body": "."}}
            ]
        },
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).raise_for_status()

    first = courier.automations.invoke.invoke_by_template(
        "thanks",
        recipient="u2",
        profile={"email": "u2@example.org"},
        data={"name": "Ines"},
        idempotency_key="thanks-u2",
    )
    again = courier.automations.invoke.invoke_by_template(
        "thanks",
        recipient="u2",
        profile={"email": "u2@example.org"},
        data={"name": "Ines"},
        idempotency_key="thanks-u2",
    )
    assert again.run_id == first.run_id
    wait_for(lambda: smtp_sink.messages, what="the automation's email")
    assert [email["Subject"] for email in smtp_sink.messages] == ["Thanks, Ines"]

    def processed() -> list[Any] | None:
        page = courier.automations.runs.list(template_id="thanks", status="PROCESSED")
        return page.runs or None

    (run,) = wait_for(processed, what="the run listed as PROCESSED")
    assert run.run_id == first.run_id
    assert run.template_id == "thanks"
    assert run.source == ["invoke/thanks"]
    (step,) = courier.automations.runs.list_steps(first.run_id).steps
    assert step.action == "send"
    assert step.status == "PROCESSED"
    assert step.message_id is not None
    message = httpx.get(
        f"{live_server.url}/messages/{step.message_id}", headers=headers, timeout=HTTP_TIMEOUT
    ).json()
    assert message["recipient"] == "u2"

    ad_hoc = courier.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [{"action": "update-profile", "profile": {"vip": True}, "merge": "overwrite"}]
        },
        recipient="u2",
    )
    wait_for(
        lambda: (
            courier.automations.runs.list(status="PROCESSED,ERROR").runs[0].run_id == ad_hoc.run_id
        ),
        what="the ad hoc run",
    )
    assert courier.profiles.retrieve("u2").profile == {"vip": True}


@pytest.fixture
def strict_courier(live_server: LiveServer, settings: Settings) -> Courier:
    """The SDK with its strict response validation on: every answer is validated against
    the SDK's model (required fields present, of the right types), not just read."""
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    return Courier(
        api_key=key, base_url=live_server.url, max_retries=0, _strict_response_validation=True
    )


GROUP = {
    "type": "group",
    "messageId": "group-1",
    "userId": "u1",
    "groupId": "acme",
    "traits": {"name": "Acme"},
    "timestamp": "2026-08-18T20:06:36Z",
}


def test_every_wrapped_endpoint_tidings_serves_fits_the_sdk_models_strictly(
    strict_courier: Courier, live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    """Each SDK method whose path Tidings serves, with the SDK validating every answer.
    `providers.*` is in the test below. Of `notifications.*`, the lists only: a template's
    content is Liquid per channel, not Courier's Elemental content (docs/sending.md)."""
    courier = strict_courier
    headers = {"Authorization": f"Bearer {courier.api_key}"}

    def call(method: str, path: str, body: Any) -> None:
        httpx.request(
            method, f"{live_server.url}{path}", json=body, headers=headers, timeout=HTTP_TIMEOUT
        ).raise_for_status()

    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("PUT", "/notifications/welcome", {"content": {"email": {"subject": "Hi", "text": "."}}})
    call("PUT", "/preferences/topics/news", {"name": "News", "default_status": "OPTED_IN"})
    call(
        "PUT",
        "/automations/thanks",
        {
            "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
            "steps": [{"action": "send", "template": "welcome"}],
        },
    )
    call("POST", "/inbound/segment", GROUP)

    call(
        "PUT", "/notifications/welcome", {"content": {"email": {"subject": "Hi", "text": "Hello."}}}
    )
    (template,) = courier.notifications.list().results
    assert (template.id, template.state, template.creator) == (  # type: ignore[union-attr]
        "welcome",
        "PUBLISHED",
        template.updater,  # type: ignore[union-attr]
    )
    versions = courier.notifications.list_versions("welcome").versions
    assert [version.version for version in versions] == ["v1", "published:v2"]

    courier.profiles.create("u1", profile={"email": "a@example.org"})
    courier.profiles.replace("u1", profile={"email": "a@example.org"})
    courier.profiles.update("u1", patch=[{"op": "add", "path": "/name", "value": "Ada"}])
    assert courier.profiles.retrieve("u1").profile == {"email": "a@example.org", "name": "Ada"}
    assert courier.profiles.lists.subscribe("u1", lists=[{"listId": "team.a"}]).status
    assert [item.id for item in courier.profiles.lists.retrieve("u1").results] == ["team.a"]
    courier.lists.update("team.b", name="Team B")
    assert courier.lists.retrieve("team.b").name == "Team B"
    assert [item.id for item in courier.lists.list().items] == ["team.a", "team.b"]
    courier.lists.subscriptions.subscribe_user("u1", list_id="team.b")
    (member,) = courier.lists.subscriptions.list("team.b").items
    assert member.recipient_id == "u1"

    by_template = courier.send.message(message={"to": {"user_id": "u1"}, "template": "welcome"})
    by_content = courier.send.message(
        message={"to": {"email": "b@example.org"}, "content": {"title": "T", "body": "B"}}
    )
    tagged = courier.send.message(
        message={"to": {"user_id": "u1"}, "template": "welcome", "metadata": {"event": "signup"}}
    )
    delayed = courier.send.message(
        message={"to": {"user_id": "u1"}, "template": "welcome", "delay": {"duration": 3_600_000}}
    )
    invoked = courier.automations.invoke.invoke_by_template("thanks", recipient="u1")
    courier.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": "welcome"}]}, recipient="u1"
    )
    call(
        "POST",
        "/inbound/segment",
        {
            **GROUP,
            "type": "track",
            "messageId": "track-1",
            "event": "Order Shipped",
            "properties": {},
        },
    )
    wait_for(lambda: len(smtp_sink.messages) == 6, what="six emails")
    call(
        "PUT",
        "/notifications/broken",
        {"content": {"email": {"subject": "{{ 1 | divided_by: 0 }}"}}},
    )
    broken = courier.send.message(message={"to": {"user_id": "u1"}, "template": "broken"})

    def failed() -> Any:
        message = courier.messages.retrieve(broken.request_id)
        return message if message.status == "UNDELIVERABLE" else None

    assert wait_for(failed, what="the broken template's message undeliverable").reason == "FAILED"

    (listed,) = courier.automations.list().templates or []
    assert (listed.id, listed.name, listed.version) == ("thanks", "thanks", "published")
    assert listed.created_at is not None
    assert courier.automations.list(version="draft").templates == []
    assert invoked.run_id in [run.run_id for run in courier.automations.runs.list().runs]
    (step,) = courier.automations.runs.list_steps(invoked.run_id).steps
    assert step.message_id is not None

    message = courier.messages.retrieve(by_template.request_id)
    assert (message.event, message.notification, message.recipient) == ("welcome", "welcome", "u1")
    message = courier.messages.retrieve(by_content.request_id)
    assert (message.event, message.notification, message.recipient) == (
        "api/send",
        "",
        "b@example.org",
    )
    assert courier.messages.retrieve(tagged.request_id).event == "signup"
    assert courier.messages.retrieve(step.message_id).event == "invoke/thanks"
    events = {item.event for item in courier.messages.list().results}
    assert events >= {"segment/track/Order Shipped", "invoke/ad-hoc"}
    assert courier.messages.history(by_template.request_id).results
    (email,) = courier.messages.content(by_template.request_id).results
    assert (email.channel, email.content.subject, email.content.title) == ("email", "Hi", "Hi")
    assert courier.messages.cancel(delayed.request_id).status == "CANCELED"

    courier.users.preferences.update_or_create_topic(
        "news", user_id="u1", topic={"status": "OPTED_OUT"}
    )
    assert courier.users.preferences.retrieve("u1").items[0].status == "OPTED_OUT"
    assert courier.users.preferences.retrieve_topic("news", user_id="u1").topic.status == (
        "OPTED_OUT"
    )
    courier.users.preferences.delete_topic("news", user_id="u1")

    wait_for(lambda: _found(lambda: courier.tenants.retrieve("acme")), what="the tenant")
    assert courier.tenants.retrieve("acme").name == "Acme"
    users = courier.tenants.list_users("acme")
    assert ([item.user_id for item in users.items or []], users.url) == (
        ["u1"],
        "/tenants/acme/users",
    )
    assert [item.tenant_id for item in courier.users.tenants.list("u1").items or []] == ["acme"]

    assert (
        courier.inbound.track_event(
            event="Signed Up", message_id="in-1", properties={}, type="track", user_id="u1"
        ).message_id
        == "in-1"
    )
    courier.profiles.lists.delete("u1")
    courier.lists.subscriptions.unsubscribe_user("u1", list_id="team.a")
    courier.lists.delete("team.b")
    courier.profiles.delete("u1")
    with pytest.raises(NotFoundError):
        courier.profiles.retrieve("u1")


def test_the_sdk_configures_providers_in_courier_shapes(
    strict_courier: Courier, smtp_sink: SmtpSink
) -> None:
    """`providers.*` and `providers.catalog`, with the SDK validating every answer: a
    configuration's id is its provider's key."""
    courier = strict_courier
    (smtp,) = courier.providers.catalog.list(keys="smtp").results
    assert (smtp.provider, smtp.channel, smtp.settings["host"].required) == ("smtp", "email", True)
    assert {entry.channel for entry in courier.providers.catalog.list(channel="sms").results} == {
        "sms"
    }
    created = courier.providers.create(provider="smtp", settings=smtp_sink.provider_config())
    assert (created.id, created.provider, created.settings["port"]) == (
        "smtp",
        "smtp",
        smtp_sink.port,
    )
    with pytest.raises(ConflictError):
        courier.providers.create(provider="smtp", settings=smtp_sink.provider_config())
    assert courier.providers.retrieve("smtp").created == created.created
    updated = courier.providers.update(
        "smtp", provider="smtp", settings=smtp_sink.provider_config(from_name="Updated")
    )
    assert updated.settings["from_name"] == "Updated"
    patched = courier.providers.patch("smtp", settings={"from_name": "Patched"})
    assert (patched.settings["from_name"], patched.settings["port"]) == ("Patched", smtp_sink.port)
    with pytest.raises(BadRequestError):
        courier.providers.patch("smtp", title="Mine")
    assert [item.id for item in courier.providers.list().results] == ["smtp"]
    courier.providers.delete("smtp")
    assert courier.providers.list().results == []
    with pytest.raises(NotFoundError):
        courier.providers.retrieve("smtp")


def _found(request: Any) -> bool:
    try:
        request()
    except NotFoundError:
        return False
    return True


def test_audiences_are_saved_read_listed_and_deleted_with_courier_filters(
    courier: Courier, live_server: LiveServer
) -> None:
    saved = courier.audiences.update(
        "pros",
        name="Pros",
        description="Paying users",
        filter={"operator": "AND", "filters": [{"operator": "EQ", "path": "plan", "value": "pro"}]},
    )
    assert saved.audience.id == "pros"
    assert saved.audience.filter is not None
    wait_for(
        lambda: (
            courier.audiences.retrieve("pros").to_dict().get("scan", {}).get("state") == "ready"
        ),
        what="the audience's first scan",
    )
    courier.profiles.create("gu", profile={"plan": "pro"})
    courier.profiles.create("ha", profile={"plan": "free"})
    assert courier.audiences.retrieve("pros").name == "Pros"
    (member,) = courier.audiences.list_members("pros").items
    assert (member.member_id, member.audience_version) == ("gu", 1)
    assert [item.id for item in courier.audiences.list().items] == ["pros"]
    courier.audiences.delete("pros")
    with pytest.raises(NotFoundError):
        courier.audiences.retrieve("pros")
