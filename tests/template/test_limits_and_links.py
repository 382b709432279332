"""Render limits (loops, output, variables, time) and safe links, alone and through a send."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink
from tidings.notification.service import render_all
from tidings.template.links import unsafe_scheme
from tidings.template.render import RenderContext, RenderError, render_budget, render_channel

NESTED_LOOPS = (
    "{% for a in (1..1000) %}{% for b in (1..1000) %}{% for c in (1..1000) %}x"
    "{% endfor %}{% endfor %}{% endfor %}"
)
CONTEXT = RenderContext(data={}, profile={})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (NESTED_LOOPS, "loop iteration limit reached"),
        ("{% for a in (1..40000) %}" + "y" * 100 + "{% endfor %}", "output stream limit reached"),
        (
            "{% assign s = '" + "z" * 64 + "' %}{% for a in (1..30) %}"
            "{% assign s = s | append: s %}{% endfor %}",
            "local namespace limit reached",
        ),
    ],
)
def test_a_template_over_a_limit_fails_with_the_limit_named(source: str, reason: str) -> None:
    with pytest.raises(RenderError) as raised:
        render_channel("email", {"text": source}, CONTEXT)
    assert raised.value.limit
    assert raised.value.reason.startswith(f"{reason} (line 1, column ")
    assert raised.value.line == 1


def test_a_render_past_its_time_budget_fails() -> None:
    # A budget already spent: the first loop entered or output written ends the render.
    with pytest.raises(RenderError) as raised, render_budget(-1.0):
        render_channel("email", {"text": "{% for a in (1..3) %}{{ a }}{% endfor %}"}, CONTEXT)
    assert raised.value.limit
    assert raised.value.reason.startswith("render time limit reached")


def test_every_channel_of_a_message_shares_one_budget() -> None:
    with render_budget(-1.0):
        rendering = render_all(
            {"email": {"text": "{% for a in (1..3) %}{{ a }}{% endfor %}"}, "sms": {"text": "hi"}},
            CONTEXT,
            strict=False,
        )
    assert rendering.limit_error is not None
    assert rendering.limit_error.startswith("email.text: render time limit reached")
    # A plain text with no loop, output tag or assignment spends no time checks.
    assert rendering.channels == {"sms": {"text": "hi"}}


def test_limits_leave_ordinary_templates_alone() -> None:
    rendering = render_all(
        {"email": {"text": "{% for item in data.items %}{{ item }},{% endfor %}"}},
        RenderContext(data={"items": list(range(2000))}, profile={}),
        strict=False,
    )
    assert rendering.errors == {}
    assert rendering.channels["email"]["text"].startswith("0,1,2,")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "  javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "&#106;avascript:alert(1)",
        "javascript&#58;alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
    ],
)
def test_unsafe_schemes_are_recognised_in_every_spelling(url: str) -> None:
    assert unsafe_scheme(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/a?b=c:d",
        "HTTP://example.org",
        "mailto:ada@example.org",
        "/orders/7",
        "#top",
        "//example.org/x",
        "orders/7?at=10:30",
        "",
    ],
)
def test_safe_and_relative_urls_are_kept(url: str) -> None:
    assert unsafe_scheme(url) is None


def test_unsafe_links_are_emptied_in_html_and_url_fields() -> None:
    rendering = render_all(
        {
            "email": {
                "html": '<a href="{{ data.url }}">x</a> <img src={{ data.image }}> '
                "<a href='{{ data.safe }}'>ok</a>",
                "text": "{{ data.url }}",
            },
            "inbox": {"title": "t", "body": "b", "action_url": "{{ data.url }}"},
        },
        RenderContext(
            data={
                "url": "javascript:alert(document.cookie)",
                "image": "data:image/svg+xml,x",
                "safe": "https://example.org/ok",
            },
            profile={},
        ),
        strict=False,
    )
    html = rendering.channels["email"]["html"]
    assert 'href=""' in html
    assert "src=" + '""' in html
    assert "href='https://example.org/ok'" in html
    assert "javascript" not in html
    assert "data:image" not in html
    assert rendering.channels["inbox"]["action_url"] == ""
    assert [(link.channel, link.field, link.url) for link in rendering.dropped_links] == [
        ("email", "html", "javascript:alert(document.cookie)"),
        ("email", "html", "data:image/svg+xml,x"),
        ("inbox", "action_url", "javascript:alert(document.cookie)"),
    ]


def _history(client: TestClient, key: str, message_id: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = client.get(
        f"/messages/{message_id}/history", headers=bearer(key)
    ).json()["results"]
    return results


def test_a_template_over_a_limit_fails_its_message_and_the_preview_says_the_same(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    headers = bearer(keys.test)
    template = {"content": {"email": {"subject": "Loops", "text": NESTED_LOOPS}}}
    assert client.put("/notifications/loops", json=template, headers=headers).status_code == 201
    assert (
        client.put(
            "/providers/smtp", json={"config": smtp_sink.provider_config()}, headers=headers
        ).status_code
        == 201
    )
    client.post("/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers)
    sent = client.post(
        "/send", json={"message": {"to": {"user_id": "u1"}, "template": "loops"}}, headers=headers
    )
    message = message_in(client, keys.test, sent.json()["requestId"], "UNDELIVERABLE")
    assert (message["reason"], message["tidings_reason"]) == ("FAILED", "RENDER_LIMIT")
    history = _history(client, keys.test, message["id"])
    assert history[-1]["type"] == "UNDELIVERABLE"
    assert history[-1]["detail"] == "email.text: loop iteration limit reached (line 1, column 4)"
    assert smtp_sink.messages == []

    preview = client.post("/notifications/loops/preview", json={}, headers=headers)
    assert preview.status_code == 200
    assert preview.json()["errors"] == {
        "email": "text: loop iteration limit reached (line 1, column 4)"
    }


def test_unsafe_links_from_data_are_dropped_from_a_sent_email_and_inbox_and_the_history_says_so(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    headers = bearer(keys.test)
    for name, config in (("smtp", smtp_sink.provider_config()), ("inbox", {})):
        assert (
            client.put(f"/providers/{name}", json={"config": config}, headers=headers).status_code
            == 201
        )
    client.post("/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers)
    sent = client.post(
        "/send",
        json={
            "message": {
                "to": {"user_id": "u1"},
                "content": {
                    "elements": [
                        {"type": "meta", "title": "Your order"},
                        {"type": "action", "content": "Track", "href": "{{ data.link }}"},
                        {"type": "image", "src": "{{ data.picture }}", "alt_text": "box"},
                    ]
                },
                "data": {"link": "javascript:fetch('//evil.example')", "picture": "data:x"},
                "routing": {"method": "all", "channels": ["email", "inbox"]},
            }
        },
        headers=headers,
    )
    message_id = sent.json()["requestId"]
    message_in(client, keys.test, message_id, "SENT")
    wait_for(lambda: smtp_sink.messages, what="the email")
    html_part = smtp_sink.messages[0].get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "javascript" not in html
    assert "data:x" not in html
    assert '<a href="">Track</a>' in html

    (rendered,) = [e for e in _history(client, keys.test, message_id) if e["type"] == "RENDERED"]
    assert {
        (link["channel"], link["field"], link["url"]) for link in rendered["dropped_links"]
    } == {
        ("email", "html", "javascript:fetch('//evil.example')"),
        ("email", "html", "data:x"),
        ("inbox", "action_url", "javascript:fetch('//evil.example')"),
    }
    token = client.post("/inbox/tokens", json={"user_id": "u1"}, headers=headers).json()["token"]
    inbox = wait_for(
        lambda: client.get("/inbox/messages", headers=bearer(token)).json()["results"],
        what="the inbox message",
    )
    assert inbox[0]["action_url"] is None
