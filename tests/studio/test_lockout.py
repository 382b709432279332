"""The Studio sign-in lockout, per account and per client address, without a browser."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tidings.app import create_app
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.studio.auth import set_admin_password

EMAIL = "admin@example.com"
PASSWORD = "a long studio password"
LOCKOUT = 900


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "sign_in_failure_limit": 3,
            "sign_in_client_failure_limit": 5,
            "sign_in_lockout_seconds": LOCKOUT,
        }
    )


@pytest.fixture
def clock(runtime: Runtime) -> list[float]:
    now = [5000.0]
    runtime.auth_limits.accounts.clock = lambda: now[0]
    runtime.auth_limits.sign_in_clients.clock = lambda: now[0]
    return now


@pytest.fixture
def studio(runtime: Runtime) -> TestClient:
    with runtime.database.write() as (session, _):
        set_admin_password(session, EMAIL, PASSWORD)
        set_admin_password(session, "other@example.com", PASSWORD)
    return TestClient(create_app(runtime))


def sign_in(client: TestClient, email: str, password: str) -> Response:
    page = client.get("/studio/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    form = {"email": email, "password": password, "next": "", "csrf_token": match.group(1)}
    return client.post("/studio/sign-in", data=form, follow_redirects=False)


def signed_in(response: Response) -> bool:
    return response.status_code == 303 and "sign-in" not in response.headers["location"]


def test_wrong_passwords_lock_the_account_and_the_right_one_does_not_bypass_it(
    studio: TestClient, clock: list[float]
) -> None:
    for _ in range(3):
        wrong = sign_in(studio, EMAIL, "not the password")
        assert wrong.status_code == 401
        assert "Wrong email or password" in wrong.text

    locked = sign_in(studio, EMAIL, PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == str(LOCKOUT)
    assert "Too many wrong passwords" in locked.text
    assert "15 minutes" in locked.text
    # Still locked near the end, whatever is sent.
    clock[0] += LOCKOUT - 1
    assert sign_in(studio, EMAIL, PASSWORD).status_code == 429
    assert sign_in(studio, " ADMIN@example.com", PASSWORD).status_code == 429  # same account

    # Another account from the same client is not locked by these.
    assert signed_in(sign_in(TestClient(studio.app), "other@example.com", PASSWORD))

    clock[0] += 1
    assert signed_in(sign_in(studio, EMAIL, PASSWORD))


def test_an_unknown_email_locks_like_a_real_one(studio: TestClient, clock: list[float]) -> None:
    for _ in range(3):
        assert sign_in(studio, "nobody@example.com", "guess guess").status_code == 401
    assert sign_in(studio, "nobody@example.com", "guess guess").status_code == 429


def test_one_client_trying_many_accounts_is_locked(studio: TestClient, clock: list[float]) -> None:
    for n in range(5):
        assert sign_in(studio, f"user{n}@example.com", "guess guess").status_code == 401
    locked = sign_in(studio, EMAIL, PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == str(LOCKOUT)
    clock[0] += LOCKOUT
    assert signed_in(sign_in(studio, EMAIL, PASSWORD))
