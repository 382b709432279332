"""Inbox tokens: signed per user and environment, expiring, useless when altered."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.inbox.conftest import Scopes, token_for
from tidings.inbox.service import (
    InboxTokenError,
    InboxUser,
    _b64encode,
    _signature,
    inbox_token,
    verify_inbox_token,
)
from tidings.kit.time import parse_timestamp, utcnow
from tidings.runtime import Runtime
from tidings.workspace.service import create_key, revoke_key

SECRET = b"a server secret for tests"
EXPIRES = datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_a_token_verifies_to_its_user_environment_and_expiry() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES, "key_1")
    assert verify_inbox_token(SECRET, token, now=EXPIRES - timedelta(seconds=1)) == InboxUser(
        "env_1", "user-1", EXPIRES, "key_1"
    )


def test_an_expired_token_is_refused() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES, "key_1")
    with pytest.raises(InboxTokenError) as error:
        verify_inbox_token(SECRET, token, now=EXPIRES)
    assert error.value.code == "expired_inbox_token"
    assert "2031-05-01T12:00:00Z" in error.value.message


def _reencode(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")


def test_an_altered_or_malformed_token_is_refused() -> None:
    token = inbox_token(SECRET, "env_1", "user-1", EXPIRES, "key_1")
    version, claims, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_user = _reencode({"env": "env_1", "sub": "admin", "exp": 1_999_999_999, "key": "key_1"})
    later = _reencode({"env": "env_1", "sub": "user-1", "exp": 9_999_999_999, "key": "key_1"})
    other_key = _reencode({"env": "env_1", "sub": "user-1", "exp": 1_999_999_999, "key": "key_2"})
    altered = [
        # Another user, or a later expiry, under the original signature.
        f"{version}.{other_user}.{signature}",
        f"{version}.{later}.{signature}",
        f"{version}.{other_key}.{signature}",
        f"{version}.{claims}.{flipped}",
        f"{claims}.{signature}",
        f"v1.{claims}.{signature}",
        f"v3.{claims}.{signature}",
        f"{token}.extra",
        "",
        "not a token at all",
    ]
    for candidate in altered:
        with pytest.raises(InboxTokenError) as error:
            verify_inbox_token(SECRET, candidate, now=EXPIRES - timedelta(days=1))
        assert error.value.code == "invalid_inbox_token", candidate


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = inbox_token(b"another server", "env_1", "user-1", EXPIRES, "key_1")
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
        scopes.production.environment_id, "user-1", expires_at, scopes.production.key_id
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


def test_a_token_without_the_key_it_was_issued_with_is_refused() -> None:
    """Tokens issued before tokens named their key (and could not be revoked) are refused."""
    claims = _reencode({"env": "env_1", "sub": "user-1", "exp": 1_999_999_999})
    signed = f"v2.{claims}"
    token = f"{signed}.{_b64encode(_signature(SECRET, signed))}"
    with pytest.raises(InboxTokenError) as error:
        verify_inbox_token(SECRET, token, now=EXPIRES - timedelta(days=1))
    assert error.value.code == "invalid_inbox_token"


def test_revoking_the_key_that_issued_a_token_ends_the_token(
    client: TestClient, runtime: Runtime, keys: Keys
) -> None:
    with runtime.database.write() as (session, _):
        extra = create_key(session, runtime.cipher, "test")
    assert extra.key is not None
    issued = client.post("/inbox/tokens", json={"user_id": "user-1"}, headers=bearer(extra.key))
    assert issued.status_code == 200
    token = issued.json()["token"]
    other = client.post("/inbox/tokens", json={"user_id": "user-1"}, headers=bearer(keys.test))
    assert client.get("/inbox/messages/count", headers=bearer(token)).json() == {"count": 0}

    with runtime.database.write() as (session, _):
        revoke_key(session, extra.id)

    refused = client.get("/inbox/messages/count", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "revoked_inbox_token"
    assert refused.json()["field"] == "Authorization"
    assert "POST /inbox/tokens" in refused.json()["message"]
    stream = client.get("/inbox/stream", params={"token": token})
    assert stream.status_code == 401
    assert stream.json() == {**refused.json(), "field": "token"}
    # A token issued with another key still opens the same inbox.
    still = client.get("/inbox/messages/count", headers=bearer(other.json()["token"]))
    assert still.json() == {"count": 0}
