"""The template editor shows the email as rendered, in a sandboxed frame with its own styles,
at desktop or mobile width; its scripts never run."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.processes import HTTP_TIMEOUT
from tests.studio.conftest import Studio, sign_in

ROD = {
    "messageId": "identify-rod",
    "type": "identify",
    "traits": {"email": "rod@example.org", "name": "Rod"},
    "userId": "rod-test",
}
HOSTILE_HTML = (
    '<p class="greeting" style="color: rgb(1, 2, 3)">Hello {{ profile.name }}</p>'
    "<script>parent.__xss = 'script'</script>"
    "<img src=x onerror=\"parent.__xss = 'img'\">"
)


def _processed(studio: Studio) -> bool:
    response = studio.api("GET", "/integrations/segment/events/identify-rod")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_the_email_is_rendered_in_a_sandboxed_frame(page: Page, studio: Studio) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert studio.send_segment(ROD).status_code == 202
    wait_for(lambda: _processed(studio), what="identify processed")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/new")
    page.get_by_label("Preview with the data of").select_option("identify-rod")
    page.locator("#email-subject").fill("Hi")
    page.locator("#email-html").fill(HOSTILE_HTML)

    greeting = page.frame_locator("#email-frame").locator("p.greeting")
    expect(greeting).to_have_text("Hello Rod")
    # Its inline style applies (the frame has a policy of its own), its scripts do not run.
    expect(greeting).to_have_css("color", "rgb(1, 2, 3)")
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    # The source is still there, folded.
    expect(page.locator("#preview .preview-email-html")).to_contain_text("<script>parent.__xss")

    frame = page.locator("#email-frame")
    desktop = frame.bounding_box()
    assert desktop is not None
    assert desktop["width"] > 375
    page.get_by_label("Mobile (375 px)").check()
    expect(frame).to_have_css("width", "375px")
    page.get_by_label("Desktop").check()
    expect(frame).not_to_have_css("width", "375px")


def test_the_frame_is_sandboxed_even_when_opened_alone(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    page.goto(f"{studio.url}/studio/notifications/new")
    token = page.locator("#template-form input[name=csrf_token]").input_value()
    response = httpx.post(
        f"{studio.url}/studio/notifications/email-frame",
        data={"csrf_token": token, "email.html": "<p>x</p>"},
        cookies=cookies,
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox;")
    assert "frame-ancestors 'self'" in policy
    assert "script-src" not in policy  # default-src 'none' applies to scripts
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.text == "<p>x</p>"
