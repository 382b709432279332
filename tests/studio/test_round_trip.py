"""Every Studio form round-trips every field of its object: an unchanged Save changes nothing.

Each object is made through the API with every field it has set (the ones a form shows
least: nested routing, JSON push data and webhook bodies, multi-line text, a PEM
certificate), opened in Studio, saved without a change, and read back through the API.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, sign_in
from tidings.automation.steps import ACTIONS

TEMPLATE: dict[str, Any] = {
    "name": "Order shipped",
    "content": {
        "email": {
            "subject": "Your order {{ data.order_id }} shipped",
            "text": "Hello {{ profile.name }},\n\nit is on its way.\n",
            "html": "<p>Hello {{ profile.name }},</p>\n<p>it is on its way.</p>",
        },
        "sms": {"text": "Order {{ data.order_id }} shipped."},
        "push": {
            "title": "Shipped",
            "body": "Order {{ data.order_id }}",
            "data": {"order_id": "{{ data.order_id }}", "deep_link": "app://orders", "n": 2},
        },
        "chat": {"text": "Order shipped"},
        "webhook": {"body": {"event": "shipped", "order": "{{ data.order_id }}", "items": [1, 2]}},
        "inbox": {"title": "Shipped", "body": "On its way", "action_url": "https://example.org/o"},
    },
    "routing": {
        "method": "all",
        "channels": ["inbox", {"method": "single", "channels": ["email", "sms", "push"]}],
    },
    "strict": True,
    "topic_id": "orders",
    "tracking": {"opens": True, "clicks": False},
}

AUTOMATION: dict[str, Any] = {
    "name": "Shipping follow-up",
    "enabled": False,
    "triggers": [
        {"source": "segment", "event": "track/Order Shipped"},
        {"source": "inbound", "event": "shipment-created"},
    ],
    "cancelation_token": "{{ data.order_id }}",
    "steps": [
        {"action": "delay", "duration": "2 hours"},
        {
            "action": "send",
            "template": "shipped",
            "recipient": {"$ref": "event.userId"},
            "data": {"order": {"$ref": "data.order_id"}},
            "if": "data.total > 10",
            "ref": "first_send",
        },
        {
            "action": "update-profile",
            "profile": {"last_shipped": {"$ref": "data.order_id"}},
            "merge": "overwrite",
        },
    ],
}

# An automation with every step type and every field the step forms show least: $refs where
# a picker or a text input stands, JSON values, a nested webhook, a multi-line text, a null.
EVERY_STEP: dict[str, Any] = {
    "name": "Every step",
    "enabled": False,
    "triggers": [{"source": "inbound", "event": "every-step"}],
    "cancelation_token": "{{ data.order_id }}",
    "steps": [
        {
            "action": "send",
            "template": "shipped",
            "recipient": {"$ref": "event.userId"},
            "data": {"order": {"$ref": "data.order_id"}, "n": 2},
            "profile": {"email": "{{ data.email }}"},
            "brand": "acme",
            "override": {"channels": ["email"]},
            "idempotency_key": "{{ data.order_id }}-send",
            "idempotency_expiry": 3600,
            "if": "data.total > 10",
            "ref": "first_send",
        },
        {"action": "send", "message": {"to": {"email": "a@example.org"}, "template": "shipped"}},
        {"action": "send", "content": {"title": "Hi", "body": "Line one\nline two"}},
        {
            "action": "send-list",
            "list": "customers",
            "template": {"$ref": "data.template"},
            "data": {"x": 1},
            "data_source": {
                "webhook": {"url": "http://127.0.0.1:9/data", "method": "GET"},
                "merge_strategy": "overwrite",
            },
        },
        {"action": "delay", "duration": "2 hours"},
        {"action": "delay", "until": "{{ data.send_at }}", "if": "data.later"},
        {"action": "cancel", "cancelation_token": "{{ data.order_id }}"},
        {
            "action": "update-profile",
            "recipient_id": "{{ data.user_id\n}}",
            "profile": {"last_shipped": {"$ref": "data.order_id"}},
            "merge": "overwrite",
        },
        {
            "action": "fetch-data",
            "webhook": {
                "url": "https://example.org/orders/{{ data.order_id }}",
                "method": "POST",
                "headers": {"Authorization": "Bearer {{ data.token }}"},
                "body": {"id": {"$ref": "data.order_id"}},
                "params": {"a": "b"},
            },
            "merge_strategy": "replace",
            "idempotency_key": "fetch-{{ data.order_id }}",
            "idempotency_expiry": None,
            "ref": "order",
        },
        {"action": "invoke", "template": "every-step", "data": {"a": 1}, "recipient": "user-1"},
        {
            "action": "send",
            "template": "shipped",
            "window": {"days": ["mon", "tue"], "hours": {"start": "09:00", "end": "17:00"}},
        },
        {"action": "delay", "duration": "1 hour", "window": "Mo-Fr 08:00-16:30"},
        {
            "action": "throttle",
            "max_allowed": 3,
            "period": "PT1H",
            "scope": "dynamic",
            "throttle_key": "{{ data.alert_id }}",
        },
        {
            "action": "wait-for-event",
            "event": "track/Order Completed",
            "match": {"cart_id": "{{ data.cart_id }}"},
            "timeout": "1 hour",
            "on_match": "continue",
            "on_timeout": "stop",
            "ref": "completed",
        },
        {
            "action": "branch",
            "branches": [
                {
                    "if": 'profile.plan == "pro"',
                    "steps": [
                        {"action": "send", "template": "shipped", "data": {"n": 1}},
                        {"action": "branch", "branches": [{"if": "data.total > 10", "steps": []}]},
                    ],
                },
                {"if": "true", "steps": []},
            ],
            "else": [{"action": "delay", "duration": "1 hour"}],
            "ref": "plan",
        },
        {
            "action": "batch",
            "window": {"type": "sliding", "duration": "5 minutes", "max": "1 hour"},
            "batch_key": "{{ data.page_id }}",
            "max_items": 50,
            "render": "last 10",
        },
        {
            "action": "add-to-batch",
            "wait_period": "PT5M",
            "max_wait_period": "PT1H",
            "retain": {"type": "last", "count": 10},
        },
    ],
}

PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUJ2Zk0tidingsX0RvY3VtZW50ZWRDQTAKBggqhkjOPQQD\n"
    "AjAXMRUwEwYDVQQDDAxUaWRpbmdzIENBIDEwHhcNMjYwMTAxMDAwMDAwWhcNMzYw\n"
    "-----END CERTIFICATE-----\n"
)
SMTP: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 2525,
    "security": "none",
    "username": "mailer",
    "password": "smtp-secret",
    "from_email": "notifications@tidings.test",
    "from_name": "Tidings",
    "reply_to": "support@tidings.test",
    "timeout_seconds": 7.5,
    "data_timeout_seconds": 90.0,
    "verify_tls": False,
    "ca_certificate": PEM,
}


def _without_times(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in document.items()
        if key not in ("created_at", "updated_at", "created", "updated", "version")
    }


def _save_unchanged(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")


def test_an_unchanged_template_save_keeps_every_field(page: Page, studio: Studio) -> None:
    topic = {"name": "Orders", "default_status": "OPTED_IN"}
    assert studio.api("PUT", "/preferences/topics/orders", json=topic).status_code in (200, 201)
    assert studio.api("PUT", "/notifications/shipped", json=TEMPLATE).status_code == 201
    before = studio.api("GET", "/notifications/shipped").json()
    sign_in(page, studio)

    page.goto(f"{studio.url}/studio/notifications/shipped")
    expect(page.locator("#strict")).to_be_checked()
    expect(page.locator("#topic_id")).to_have_value("orders")
    expect(page.locator("#push-data")).to_contain_text('"deep_link": "app://orders"')
    expect(page.locator("#webhook-body")).to_contain_text('"event": "shipped"')
    expect(page.locator("#tracking-opens")).to_have_value("on")
    expect(page.locator("#tracking-clicks")).to_have_value("off")
    _save_unchanged(page, f"{studio.url}/studio/notifications/shipped")

    after = studio.api("GET", "/notifications/shipped").json()
    assert _without_times(after) == _without_times(before)
    assert after["content"] == TEMPLATE["content"]
    assert after["routing"]["channels"][1]["channels"] == ["email", "sms", "push"]


def test_template_fields_edited_in_studio(page: Page, studio: Studio) -> None:
    template = {"content": {"email": {"subject": "Hi", "text": "Hello"}}}
    assert studio.api("PUT", "/notifications/hello", json=template).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/hello")

    page.locator("#push-title").fill("Hi")
    page.locator("#push-data").fill('{"screen": "home"')
    expect(page.locator("#preview")).to_contain_text("push.data: not valid JSON")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#form-error")).to_contain_text("push.data: not valid JSON")
    expect(page.locator("#push-data")).to_have_attribute("aria-invalid", "true")
    # What was typed is still there, to be fixed.
    expect(page.locator("#push-title")).to_have_value("Hi")

    page.locator("#push-data").fill('{"screen": "home"}')
    page.locator("#routing").fill('{"method": "all", "channels": ["email", "push"]}')
    page.locator("#strict").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    saved = studio.api("GET", "/notifications/hello").json()
    assert saved["content"]["push"] == {"title": "Hi", "body": "", "data": {"screen": "home"}}
    assert saved["routing"] == {"method": "all", "channels": ["email", "push"]}
    assert saved["strict"] is True

    # Emptying the routing and the push fields removes them.
    page.locator("#routing").fill("")
    page.locator("#push-title").fill("")
    page.locator("#push-data").fill("")
    page.locator("#strict").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    saved = studio.api("GET", "/notifications/hello").json()
    assert saved["routing"] is None
    assert "push" not in saved["content"]
    assert saved["strict"] is False


def test_an_unchanged_automation_save_keeps_every_field(page: Page, studio: Studio) -> None:
    template = {"content": {"email": {"subject": "Shipped", "text": "On its way"}}}
    assert studio.api("PUT", "/notifications/shipped", json=template).status_code == 201
    response = studio.api("PUT", "/automations/follow-up", json=AUTOMATION)
    assert response.status_code == 201, response.text
    before = studio.api("GET", "/automations/follow-up").json()
    sign_in(page, studio)

    _save_unchanged(page, f"{studio.url}/studio/automations/follow-up")

    after = studio.api("GET", "/automations/follow-up").json()
    # Nothing changed, so no new version either.
    assert after["version"] == before["version"]
    assert _without_times(after) == _without_times(before)
    assert after["steps"] == AUTOMATION["steps"]


def test_an_unchanged_save_of_every_step_type_in_the_step_forms(page: Page, studio: Studio) -> None:
    template = {"content": {"email": {"subject": "Shipped", "text": "On its way"}}}
    assert studio.api("PUT", "/notifications/shipped", json=template).status_code == 201
    response = studio.api("PUT", "/automations/every-step", json=EVERY_STEP)
    assert response.status_code == 201, response.text
    before = studio.api("GET", "/automations/every-step").json()
    assert {step["action"] for step in before["steps"]} == set(ACTIONS)
    sign_in(page, studio)

    # The form view: each field in its widget, or as JSON where the widget cannot show it.
    page.goto(f"{studio.url}/studio/automations/every-step")
    top = page.locator("#automation-form > ol.step-cards > .step-card")
    expect(top).to_have_count(len(EVERY_STEP["steps"]))
    expect(page.locator("#steps-0-template")).to_have_value("shipped")
    expect(page.locator("#steps-3-template")).to_have_value('{"$ref": "data.template"}')
    expect(page.locator("#steps-7-recipient_id")).to_have_value('"{{ data.user_id\\n}}"')
    expect(page.locator("#steps-8-webhook-method")).to_have_value("POST")
    _save_unchanged(page, f"{studio.url}/studio/automations/every-step")
    after = studio.api("GET", "/automations/every-step").json()
    assert after["version"] == before["version"]
    assert _without_times(after) == _without_times(before)

    # To JSON and back to the form, then saved: still nothing changed.
    page.get_by_role("button", name="JSON", exact=True).click()
    expect(page.locator("#steps")).to_be_visible()
    page.get_by_role("button", name="Form", exact=True).click()
    expect(page.locator("#steps-8-webhook-method")).to_have_value("POST")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    after = studio.api("GET", "/automations/every-step").json()
    assert after["version"] == before["version"]
    assert after["steps"] == EVERY_STEP["steps"]


def test_an_unchanged_provider_save_keeps_every_field(page: Page, studio: Studio) -> None:
    response = studio.api("PUT", "/providers/smtp", json={"config": SMTP, "priority": 3})
    assert response.status_code in (200, 201), response.text
    before = studio.api("GET", "/providers/smtp").json()
    sign_in(page, studio)

    page.goto(f"{studio.url}/studio/settings/providers/smtp")
    # A PEM certificate keeps its lines.
    expect(page.locator("textarea#config-ca_certificate")).to_have_value(PEM)
    _save_unchanged(page, f"{studio.url}/studio/settings/providers/smtp")

    after = studio.api("GET", "/providers/smtp").json()
    assert _without_times(after) == _without_times(before)
    assert after["config"]["ca_certificate"] == PEM
    assert after["config"]["password"] == "**********"  # kept, not shown

    # Removing it asks first, naming what happens to the channel's messages.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Remove this provider").click()
    assert "email messages go to the channel's next provider" in questions[0]
    assert studio.api("GET", "/providers/smtp").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove this provider").click()
    expect(page).to_have_url(re.compile(r"/studio/settings"))
    assert studio.api("GET", "/providers/smtp").status_code == 404
