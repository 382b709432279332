"""An unexpected failure inside Studio answers Studio's error page; the API keeps its JSON."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import update

from tests.conftest import Keys, bearer, wait_for
from tests.studio.conftest import Studio, screenshot, sign_in
from tidings.app import create_app
from tidings.message.repository import MessageRepository
from tidings.models import Message
from tidings.runtime import Runtime
from tidings.studio.auth import set_admin_password

EMAIL = "admin@example.com"
PASSWORD = "a long studio password"
LOGGER = "tidings.http_errors"


def _signed_in(client: TestClient) -> None:
    page = client.get("/studio/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    form = {"email": EMAIL, "password": PASSWORD, "next": "", "csrf_token": match.group(1)}
    answer = client.post("/studio/sign-in", data=form, follow_redirects=False)
    assert answer.status_code == 303


def test_a_failing_studio_page_answers_the_error_page_and_the_api_keeps_json(
    runtime: Runtime,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with runtime.database.write() as (session, _):
        set_admin_password(session, EMAIL, PASSWORD)

    def broken_page(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the message log's query broke: secret-detail-42")

    # The message log and GET /messages both read through this method.
    monkeypatch.setattr(MessageRepository, "page", broken_page)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        _signed_in(client)
        page = client.get("/studio/messages")
        fragment = client.get("/studio/messages", headers={"HX-Request": "true"})
        api = client.get("/messages", headers=bearer(keys.test))

    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text
    # In Studio's layout, signed in: the navigation is there.
    assert 'aria-label="Studio"' in page.text
    assert "secret-detail-42" not in page.text
    assert "Traceback" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    page_id = re.search(r"error_id=(err_[0-9a-f]{16})", page.text)
    assert page_id

    assert fragment.status_code == 500
    assert "<html" not in fragment.text
    assert "Something went wrong" in fragment.text
    fragment_id = re.search(r"error_id=(err_[0-9a-f]{16})", fragment.text)
    assert fragment_id
    assert fragment_id.group(1) != page_id.group(1)

    assert api.status_code == 500
    body = api.json()
    assert set(body) == {"code", "message", "field"}
    assert body["code"] == "internal_error"
    api_id = re.search(r"error_id=(err_[0-9a-f]{16})", body["message"])
    assert api_id

    records = [record for record in caplog.records if record.name == LOGGER]
    lines = [record.getMessage() for record in records]
    assert [line.split(" code=")[0] for line in lines] == [
        "failed 500 GET /studio/messages",
        "failed 500 GET /studio/messages",
        "failed 500 GET /messages",
    ]
    assert lines[0].endswith(f"error_id={page_id.group(1)}")
    assert lines[1].endswith(f"error_id={fragment_id.group(1)}")
    assert lines[2].endswith(f"error_id={api_id.group(1)}")
    # Studio logs the traceback with its line, since nothing raises it further.
    assert records[0].exc_info is not None
    assert "secret-detail-42" in str(records[0].exc_info[1])


def test_a_page_that_fails_in_the_live_server_shows_the_error_page(
    page: Page, studio: Studio, runtime: Runtime
) -> None:
    """A message whose stored output was damaged (a JSON string where an object belongs):
    its Studio page fails for real, in `tidings serve`."""
    body = {"message": {"to": {"email": "a@example.org"}, "content": {"title": "T", "body": "B"}}}
    assert studio.api("POST", "/send", json=body).status_code == 202

    def ended() -> list[str]:
        found = studio.api("GET", "/messages").json()["results"]
        return [message["id"] for message in found if message["status"] == "UNROUTABLE"]

    wait_for(lambda: ended() != [], what="the message UNROUTABLE")
    message_id = ended()[0]
    with runtime.database.write() as (session, _):
        session.execute(
            update(Message).where(Message.message_id == message_id).values(output="damaged")
        )
    sign_in(page, studio)

    answer = page.goto(f"{studio.url}/studio/messages/{message_id}")
    assert answer is not None
    assert answer.status == 500
    expect(page.get_by_role("heading", level=1)).to_have_text("Something went wrong")
    expect(page.get_by_role("navigation", name="Studio")).to_be_visible()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("error_id=err_")
    error_id = re.search(r"err_[0-9a-f]{16}", alert.inner_text())
    assert error_id
    assert "Traceback" not in page.content()
    assert "AttributeError" not in page.content()
    screenshot(page, "studio-error")

    def logged() -> bool:
        return f"error_id={error_id.group(0)}" in studio.log_path.read_text()

    wait_for(logged, what="the failure's log line")
    log = studio.log_path.read_text()
    line = next(line for line in log.splitlines() if error_id.group(0) in line)
    assert f"failed 500 GET /studio/messages/{message_id} code=internal_error" in line
    assert "Traceback" in log.split(line, 1)[1]
