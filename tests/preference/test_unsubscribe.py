"""Signed one-click unsubscribe links (RFC 8058): tokens, the confirmation page, the POST."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.preference.conftest import Scopes
from tidings.config import Settings
from tidings.models import UserPreference
from tidings.preference.service import (
    public_base_url,
    unsubscribe_headers,
    unsubscribe_key,
    unsubscribe_token,
    unsubscribe_url,
    verify_unsubscribe_token,
)
from tidings.runtime import Runtime

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def put_topic(client: TestClient, key: str, topic_id: str, name: str, default: str) -> None:
    response = client.put(
        f"/preferences/topics/{topic_id}",
        json={"name": name, "default_status": default},
        headers=bearer(key),
    )
    assert response.status_code in (200, 201), response.text


def status_of(client: TestClient, key: str, topic_id: str, user_id: str = "u1") -> str:
    response = client.get(f"/users/{user_id}/preferences/{topic_id}", headers=bearer(key))
    status: str = response.json()["topic"]["status"]
    return status


def stored(runtime: Runtime) -> list[tuple[str, str, str, str]]:
    with runtime.database.read() as session:
        return [
            (row.environment_id, row.user_id, row.topic_id, row.status)
            for row in session.query(UserPreference).order_by(UserPreference.id)
        ]


# Tokens


def test_token_round_trips_and_is_url_safe() -> None:
    key = unsubscribe_key(b"server secret")
    token = unsubscribe_token(key, "env_1", "user/ä?&", "topic.x")
    assert token.startswith("v1.")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert verify_unsubscribe_token(key, token) == ("env_1", "user/ä?&", "topic.x")


def test_tampered_or_foreign_tokens_are_rejected() -> None:
    key = unsubscribe_key(b"server secret")
    token = unsubscribe_token(key, "env_1", "u1", "digest")
    version, payload, mac = token.split(".")
    forged = base64.urlsafe_b64encode(b'["env_1","u2","digest"]').decode().rstrip("=")
    assert verify_unsubscribe_token(key, f"{version}.{forged}.{mac}") is None
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert verify_unsubscribe_token(key, f"{version}.{payload}.{flipped}") is None
    assert verify_unsubscribe_token(key, f"v2.{payload}.{mac}") is None
    assert verify_unsubscribe_token(unsubscribe_key(b"another secret"), token) is None
    for garbage in ("", "v1", "v1..", "v1.x.y", "v1.!!!.@@@", token + ".x", "v1." + "a" * 5000):
        assert verify_unsubscribe_token(key, garbage) is None


def test_the_key_is_derived_per_purpose() -> None:
    key = unsubscribe_key(b"server secret")
    assert len(key) == 32
    assert key == unsubscribe_key(b"server secret")
    assert key != b"server secret"


@pytest.mark.backend_independent  # settings' public URL only
def test_urls_and_rfc_8058_headers(settings: Settings) -> None:
    assert public_base_url(settings) == "http://127.0.0.1:8000"
    configured = settings.model_copy(update={"public_url": "https://notify.example.org/"})
    assert public_base_url(configured) == "https://notify.example.org"
    url = unsubscribe_url("https://notify.example.org/", "v1.abc.def")
    assert url == "https://notify.example.org/unsubscribe/v1.abc.def"
    assert unsubscribe_headers(url) == {
        "List-Unsubscribe": "<https://notify.example.org/unsubscribe/v1.abc.def>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# Pages


@pytest.fixture
def token(client: TestClient, keys: Keys, scopes: Scopes, signing_key: bytes) -> str:
    put_topic(client, keys.test, "digest", "Weekly digest", "OPTED_IN")
    return unsubscribe_token(signing_key, scopes.test.environment_id, "u1", "digest")


def test_get_shows_a_confirmation_form_and_changes_nothing(
    client: TestClient, keys: Keys, runtime: Runtime, token: str
) -> None:
    response = client.get(f"/unsubscribe/{token}", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    assert "<h1>Unsubscribe from Weekly digest?</h1>" in page
    assert '<form method="post">' in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    assert stored(runtime) == []
    assert status_of(client, keys.test, "digest") == "OPTED_IN"


def test_one_click_post_opts_the_user_out(
    client: TestClient, keys: Keys, runtime: Runtime, scopes: Scopes, token: str
) -> None:
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 200
    assert "You are unsubscribed from Weekly digest" in response.text
    assert stored(runtime) == [(scopes.test.environment_id, "u1", "digest", "OPTED_OUT")]
    assert status_of(client, keys.test, "digest") == "OPTED_OUT"
    again = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert again.status_code == 200
    assert len(stored(runtime)) == 1
    page = client.get(f"/unsubscribe/{token}", headers=BROWSER).text
    assert "<h1>You are unsubscribed from Weekly digest</h1>" in page
    assert "<form" not in page


def test_one_click_keeps_the_users_routing_choice(
    client: TestClient, keys: Keys, runtime: Runtime, token: str
) -> None:
    client.put(
        "/users/u1/preferences/digest",
        json={
            "topic": {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["sms"]}
        },
        headers=bearer(keys.test),
    )
    client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    topic = client.get("/users/u1/preferences/digest", headers=bearer(keys.test)).json()["topic"]
    assert (topic["status"], topic["has_custom_routing"], topic["custom_routing"]) == (
        "OPTED_OUT",
        True,
        ["sms"],
    )


def test_one_click_accepts_multipart_bodies(client: TestClient, keys: Keys, token: str) -> None:
    response = client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert status_of(client, keys.test, "digest") == "OPTED_OUT"


def test_post_without_the_one_click_body_changes_nothing(
    client: TestClient, runtime: Runtime, token: str
) -> None:
    response = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "Maybe"})
    assert response.status_code == 400
    assert response.json()["code"] == "one_click_body_required"
    assert stored(runtime) == []


def test_required_topics_stay_subscribed(
    client: TestClient, keys: Keys, runtime: Runtime, scopes: Scopes, signing_key: bytes
) -> None:
    put_topic(client, keys.test, "security", "Security alerts", "REQUIRED")
    token = unsubscribe_token(signing_key, scopes.test.environment_id, "u1", "security")
    page = client.get(f"/unsubscribe/{token}", headers=BROWSER).text
    assert "You can&#x27;t unsubscribe from Security alerts" in page
    assert "<form" not in page
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 200
    assert "required" in response.text
    assert stored(runtime) == []


def test_invalid_links_change_nothing(client: TestClient, runtime: Runtime, token: str) -> None:
    version, payload, mac = token.split(".")
    forged = f"{version}.{payload}.{'A' * len(mac)}"
    response = client.post(f"/unsubscribe/{forged}", data=ONE_CLICK)
    assert response.status_code == 404
    assert response.json()["code"] == "invalid_unsubscribe_link"
    page = client.get(f"/unsubscribe/{forged}", headers=BROWSER)
    assert page.status_code == 404
    assert "<h1>Invalid unsubscribe link</h1>" in page.text
    assert stored(runtime) == []


def test_a_deleted_topic_is_a_404(
    client: TestClient, keys: Keys, runtime: Runtime, token: str
) -> None:
    client.delete("/preferences/topics/digest", headers=bearer(keys.test))
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 404
    assert response.json()["code"] == "topic_not_found"
    assert stored(runtime) == []


def test_topic_names_are_escaped(
    client: TestClient, keys: Keys, scopes: Scopes, signing_key: bytes
) -> None:
    name = '<script>alert("x")</script> & <b>News</b>'
    put_topic(client, keys.test, "news", name, "OPTED_IN")
    token = unsubscribe_token(signing_key, scopes.test.environment_id, "u1", "news")
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;News&lt;/b&gt;"
    for response in (
        client.get(f"/unsubscribe/{token}", headers=BROWSER),
        client.post(f"/unsubscribe/{token}", data=ONE_CLICK),
    ):
        assert response.status_code == 200
        assert "<script>" not in response.text
        assert "<b>" not in response.text
        assert escaped in response.text


def test_a_token_opts_out_only_in_its_own_environment(
    client: TestClient, keys: Keys, runtime: Runtime, scopes: Scopes, token: str
) -> None:
    put_topic(client, keys.production, "digest", "Production digest", "OPTED_IN")
    assert client.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    assert status_of(client, keys.test, "digest") == "OPTED_OUT"
    assert status_of(client, keys.production, "digest") == "OPTED_IN"
    assert stored(runtime) == [(scopes.test.environment_id, "u1", "digest", "OPTED_OUT")]
