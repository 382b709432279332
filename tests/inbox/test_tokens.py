"""Inbox tokens: signed per user and environment, expiring, useless when altered."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.inbox.conftest import Scopes, token_for
from tidings.inbox.service import InboxTokenError, InboxUser, inbox_token, verify_inbox_token
from tidings.kit.time import parse_timestamp, utcnow

SECRET = b"a server secret for tests"
EXPIRES = datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_a_token_verifies_to_its_user_environment_and_expiry() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES)
    assert verify_inbox_token(SECRET, token, now=EXPIRES - timedelta(seconds=1)) == InboxUser(
        "env_1", "user-1", EXPIRES
    )


def test_an_expired_token_is_refused() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES)
    with pytest.raises(InboxTokenError) as error:
        verify_inbox_token(SECRET, token, now=EXPIRES)
    assert error.value.code == "expired_inbox_token"
    assert "2031-05-01T12:00:00Z" in error.value.message


def _reencode(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")


def test_an_altered_or_malformed_token_is_refused() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES)
    version, claims, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_user = _reencode({"env": "env_1", "sub": "admin", "exp": 1_999_999_999})
    later = _reencode({"env": "env_1", "sub": "user-1", "exp": 9_999_999_999})
    altered = [
        # Another user, or a later expiry, under the original signature.
        f"{version}.{other_user}.{signature}",
        f"{version}.{later}.{signature}",
        f"{version}.{claims}.{flipped}",
        f"{claims}.{signature}",
        f"v2.{claims}.{signature}",
        f"{token}.extra",
        "",
        "not a token at all",
    ]
    for candidate in altered:
        with pytest.raises(InboxTokenError) as error:
            verify_inbox_token(SECRET, candidate, now=EXPIRES - timedelta(days=1))
        assert error.value.code == "invalid_inbox_token", candidate


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = inbox_token(b"another server", "env_1", "user-1", EXPIRES)
    with pytest.raises(InboxTokenError) as error:
        verify_inbox_token(SECRET, token, now=EXPIRES - timedelta(days=1))
    assert error.value.code == "invalid_inbox_token"


def test_the_api_issues_a_token_for_the_keys_environment(
    client: TestClient, keys: Keys, scopes: Scopes, secret: bytes
) -> None:
    before = utcnow().replace(microsecond=0)
    response = client.post(
        "/inbox/tokens", json={"user_id": "user-1"}, headers=bearer(keys.production)
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    expires_at = parse_timestamp(body["expires_at"])
    assert expires_at is not None
    # 24 hours by default.
    assert before + timedelta(hours=24) <= expires_at <= utcnow() + timedelta(hours=24)
    assert verify_inbox_token(secret, body["token"]) == InboxUser(
        scopes.production.environment_id, "user-1", expires_at
    )


def test_the_api_takes_a_lifetime_of_up_to_thirty_days(
    client: TestClient, keys: Keys, secret: bytes
) -> None:
    response = client.post(
        "/inbox/tokens",
        json={"user_id": "user-1", "expires_in_seconds": 30 * 24 * 3600},
        headers=bearer(keys.test),
    )
    assert response.status_code == 200
    expires_at = verify_inbox_token(secret, response.json()["token"]).expires_at
    assert expires_at - utcnow() > timedelta(days=29, hours=23)

    too_long = client.post(
        "/inbox/tokens",
        json={"user_id": "user-1", "expires_in_seconds": 30 * 24 * 3600 + 1},
        headers=bearer(keys.test),
    )
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "invalid_request"
    assert too_long.json()["field"] == "expires_in_seconds"

    no_user = client.post("/inbox/tokens", json={}, headers=bearer(keys.test))
    assert no_user.status_code == 400
    assert no_user.json()["field"] == "user_id"


def test_issuing_a_token_needs_an_api_key(
    client: TestClient, scopes: Scopes, secret: bytes
) -> None:
    missing = client.post("/inbox/tokens", json={"user_id": "user-1"})
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_api_key"
    # An inbox token opens the inbox, not the API.
    with_token = client.post(
        "/inbox/tokens",
        json={"user_id": "user-1"},
        headers=bearer(token_for(secret, scopes.test, "user-1")),
    )
    assert with_token.status_code == 401
    assert with_token.json()["code"] == "invalid_api_key"
