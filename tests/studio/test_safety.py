"""Untrusted input never runs; forms without the session's CSRF token are refused."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in

SCRIPT = "<script>window.__xss = 'script'</script>"
IMAGE = "<img src=x onerror=\"window.__xss = 'img'; alert('xss')\">"
HOSTILE_IDENTIFY = {
    "messageId": "hostile-identify",
    "type": "identify",
    "email": IMAGE,
    "userId": "mallory</td><script>window.__xss='user'</script>",
    "traits": {"name": SCRIPT, "email": "mallory@example.org", "bio": IMAGE},
}
HOSTILE_TRACK = {
    "messageId": "hostile-track<svg onload=alert(1)>",
    "type": "track",
    "event": f"Clicked {IMAGE}",
    "userId": "mallory</td><script>window.__xss='user'</script>",
    "properties": {"html": SCRIPT},
}


def _processed(studio: Studio, message_id: str) -> bool:
    response = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_event_and_trait_html_never_executes(page: Page, studio: Studio) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, studio)
    assert studio.send_segment(HOSTILE_IDENTIFY).status_code == 202
    assert studio.send_segment(HOSTILE_TRACK).status_code == 202
    wait_for(lambda: _processed(studio, "hostile-identify"), what="identify processed")

    # The live list swaps the hostile rows in through htmx.
    expect(page.locator("#events tbody tr")).to_have_count(2)
    expect(page.locator("#events")).to_contain_text(f"track/Clicked {IMAGE}")

    pages = [
        "/studio/integrations/segment",
        "/studio/events/hostile-identify",
        "/studio/event-names",
        "/studio/profiles?q=mallory",
        "/studio/profiles/mallory%3C/td%3E%3Cscript%3Ewindow.__xss='user'%3C/script%3E",
    ]
    for path in pages:
        page.goto(f"{studio.url}{path}")
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("script:not([src])").count() == 0, path
        assert page.locator("img").count() == 0, path
    page.goto(f"{studio.url}/studio/events/hostile-identify")
    expect(page.locator("#raw-json")).to_contain_text(SCRIPT.replace('"', '\\"'))
    expect(page.locator("#raw-json")).to_contain_text("onerror")
    screenshot(page, "xss-event-detail")

    # Rendered through the template preview too.
    page.goto(f"{studio.url}/studio/notifications/new")
    page.get_by_label("Preview with the data of").select_option("hostile-identify")
    page.locator("#email-html").fill("<p>{{ profile.name }}</p>{{ data.bio }}")
    expect(page.locator("#preview .preview-email-html")).to_contain_text("&lt;script&gt;")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#preview img, #preview script").count() == 0
    # An unsafe link is dropped and said so; a template over a render limit shows its error,
    # the same one a send of it fails with.
    page.locator("#email-html").fill('<a href="javascript:alert(1)">x</a>')
    expect(page.locator("#preview")).to_contain_text(
        "email.html: dropped the link javascript:alert(1)"
    )
    expect(page.locator("#preview .preview-email-html")).to_have_text('<a href="">x</a>')
    page.locator("#email-html").fill(
        "{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}"
    )
    expect(page.locator("#preview")).to_contain_text("email: html: loop iteration limit reached")
    assert dialogs == []


def test_posts_without_the_csrf_token_are_refused(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/settings")
    token = page.locator("input[name=csrf_token]").first.input_value()
    rows_before = page.locator("section[aria-labelledby=keys-title] tbody tr").count()

    missing = page.request.post(
        f"{studio.url}/studio/settings/keys", form={"environment": "test"}, max_redirects=0
    )
    assert missing.status == 403
    assert missing.json() == {
        "code": "csrf_failed",
        "message": missing.json()["message"],
        "field": "csrf_token",
    }
    wrong = page.request.post(
        f"{studio.url}/studio/settings/keys",
        form={"environment": "test", "csrf_token": token + "x"},
        max_redirects=0,
    )
    assert wrong.status == 403
    assert wrong.json()["code"] == "csrf_failed"
    wrong_header = page.request.post(
        f"{studio.url}/studio/settings/keys",
        form={"environment": "test"},
        headers={"X-CSRF-Token": "not-the-token"},
        max_redirects=0,
    )
    assert wrong_header.status == 403
    page.reload()
    assert page.locator("section[aria-labelledby=keys-title] tbody tr").count() == rows_before

    # A NUL in a field (no database column can hold one) is a 400 naming the field.
    nul = page.request.post(
        f"{studio.url}/studio/settings/keys",
        form={"environment": "te\x00st", "csrf_token": token},
        max_redirects=0,
    )
    assert nul.status == 400
    assert nul.json()["code"] == "invalid_string"
    assert nul.json()["field"] == "environment"
    page.reload()
    assert page.locator("section[aria-labelledby=keys-title] tbody tr").count() == rows_before

    # The same request with the page's token goes through.
    accepted = page.request.post(
        f"{studio.url}/studio/settings/keys",
        form={"environment": "test", "csrf_token": token},
        max_redirects=0,
    )
    assert accepted.status == 303
    page.reload()
    expect(page.locator("section[aria-labelledby=keys-title] tbody tr")).to_have_count(
        rows_before + 1
    )
    screenshot(page, "settings")
