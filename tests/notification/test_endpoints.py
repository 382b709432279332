"""Notification templates: CRUD, Liquid checks on save, preview and strict mode."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.ingest.test_inbound_segment import post, processed
from tests.payloads import track

ORDER = {
    "name": "Order shipped",
    "content": {
        "email": {
            "subject": "Order {{ order_id }} shipped",
            "html": "<p>Hi {{ profile.name }}, order {{ data.order_id }}</p>",
            "text": "Hi {{ profile.name }}",
        },
        "sms": {"text": "Order {{ data.order_id }} shipped"},
        "push": {
            "title": "Shipped",
            "body": "{{ data.order_id }}",
            "data": {"id": "{{ data.order_id }}"},
        },
        "webhook": {"body": {"order": "{{ data.order_id }}", "count": 2}},
    },
    "routing": {
        "method": "single",
        "channels": ["email", {"method": "all", "channels": ["sms", "push"]}],
    },
}


def test_create_read_list_replace_delete(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    created = client.put("/notifications/order-shipped", json=ORDER, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "order-shipped"
    assert body["name"] == "Order shipped"
    assert body["routing"]["channels"][1] == {"method": "all", "channels": ["sms", "push"]}
    assert client.get("/notifications/order-shipped", headers=headers).json() == body
    replaced = client.put(
        "/notifications/order-shipped",
        json={"content": {"sms": {"text": "new"}}},
        headers=headers,
    )
    assert replaced.status_code == 200
    assert replaced.json()["content"] == {"sms": {"text": "new"}}
    assert replaced.json()["name"] == "order-shipped"
    listing = client.get("/notifications", headers=headers).json()
    assert [item["id"] for item in listing["results"]] == ["order-shipped"]
    assert client.get("/notifications", headers=bearer(keys.production)).json()["results"] == []
    assert client.delete("/notifications/order-shipped", headers=headers).status_code == 204
    missing = client.get("/notifications/order-shipped", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "notification_not_found"


def test_liquid_errors_and_bad_shapes_name_the_field(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    broken = client.put(
        "/notifications/x",
        json={"content": {"email": {"subject": "Hi {{ profile.name", "text": "ok"}}},
        headers=headers,
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_template"
    assert broken.json()["field"] == "content.email.subject"
    empty = client.put("/notifications/x", json={"content": {}}, headers=headers)
    assert empty.status_code == 400
    assert empty.json()["field"] == "content"
    unknown_channel = client.put(
        "/notifications/x", json={"content": {"fax": {"text": "hi"}}}, headers=headers
    )
    assert unknown_channel.status_code == 400
    assert unknown_channel.json()["field"] == "content.fax"
    unknown_topic = client.put(
        "/notifications/x",
        json={"content": {"sms": {"text": "hi"}}, "topic_id": "nope"},
        headers=headers,
    )
    assert unknown_topic.status_code == 400
    assert unknown_topic.json()["code"] == "unknown_topic"


def test_preview_renders_every_channel_and_sends_nothing(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/order-shipped", json=ORDER, headers=headers)
    preview = client.post(
        "/notifications/order-shipped/preview",
        json={"data": {"order_id": "A<1>"}, "profile": {"name": "Ada"}},
        headers=headers,
    )
    assert preview.status_code == 200, preview.text
    channels = preview.json()["channels"]
    assert channels["email"] == {
        "subject": "Order A<1> shipped",
        "html": "<p>Hi Ada, order A&lt;1&gt;</p>",
        "text": "Hi Ada",
    }
    assert channels["sms"] == {"text": "Order A<1> shipped"}
    assert channels["push"] == {"title": "Shipped", "body": "A<1>", "data": {"id": "A<1>"}}
    assert channels["webhook"] == {"body": {"order": "A<1>", "count": 2}}
    assert preview.json()["errors"] == {}
    assert client.get("/messages", headers=headers).json()["results"] == []


def test_preview_with_a_received_event_uses_its_properties(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/order-shipped", json=ORDER, headers=headers)
    post(client, keys.test, track(properties={"order_id": "SEG-9"}))
    processed(client, keys.test, "segment-test-message-a8rmf")
    preview = client.post(
        "/notifications/order-shipped/preview",
        json={"event_message_id": "segment-test-message-a8rmf"},
        headers=headers,
    ).json()
    assert preview["channels"]["sms"] == {"text": "Order SEG-9 shipped"}


def test_strict_mode_fails_only_the_affected_channel(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put(
        "/notifications/strict",
        json={
            "strict": True,
            "content": {
                "email": {"subject": "Hi {{ profile.name }}", "text": "x"},
                "sms": {"text": "Code {{ data.code }}"},
            },
        },
        headers=headers,
    )
    preview = client.post(
        "/notifications/strict/preview", json={"data": {"code": "42"}}, headers=headers
    ).json()
    assert preview["channels"] == {"sms": {"text": "Code 42"}}
    assert "profile.name" in preview["errors"]["email"]
    assert preview["errors"]["email"].startswith("subject:")


def test_missing_variables_render_empty_by_default(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put(
        "/notifications/lenient",
        json={"content": {"sms": {"text": "[{{ data.nope }}]"}}},
        headers=headers,
    )
    preview = client.post("/notifications/lenient/preview", json={}, headers=headers).json()
    assert preview["channels"] == {"sms": {"text": "[]"}}


def test_an_unknown_filter_is_refused_on_save_with_its_field_and_line(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    refused = client.put(
        "/notifications/x",
        json={
            "content": {
                "email": {"subject": "Hi", "html": "<p>Hello</p>\n<p>{{ x | nosuchfilter }}</p>"},
                "push": {"title": "t", "body": "b", "data": {"ids": ["{{ y | nope: 1 }}"]}},
            }
        },
        headers=headers,
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "invalid_template",
        "message": "content.email.html: the Liquid template uses an unknown filter "
        "'nosuchfilter' (line 2, column 11); Tidings has Liquid's standard filters, such as "
        "default, upcase and date",
        "field": "content.email.html",
    }
    assert client.get("/notifications/x", headers=headers).status_code == 404
    pushed = client.put(
        "/notifications/x",
        json={
            "content": {"push": {"title": "t", "body": "b", "data": {"ids": ["{{ y | nope }}"]}}}
        },
        headers=headers,
    )
    assert pushed.status_code == 400
    assert pushed.json()["field"] == "content.push.data.ids[0]"
    assert "unknown filter 'nope' (line 1, column 8)" in pushed.json()["message"]
    known = client.put(
        "/notifications/x",
        json={"content": {"sms": {"text": "{{ data.name | default: 'you' | upcase }}"}}},
        headers=headers,
    )
    assert known.status_code == 201, known.text
