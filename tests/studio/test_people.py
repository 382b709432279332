"""Profiles edited and deleted in Studio by the API's rules; tenants, lists and preference
topics; and the paging of a profile's events and messages and of event names."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in

START = {"email": "ada@example.org", "plan": "pro", "address": {"city": "Lyon", "zip": "69001"}}


def _profile(studio: Studio, user_id: str) -> Any:
    response = studio.api("GET", f"/profiles/{user_id}")
    return response.json()["profile"] if response.status_code == 200 else None


def _save(page: Page, text: str, mode: str) -> None:
    page.get_by_label("Profile (JSON)").fill(text)
    page.get_by_role("radio", name=re.compile(mode)).check()
    page.get_by_role("button", name="Save profile").click()


def test_edit_a_profile_by_merge_and_replace_as_the_api_does(page: Page, studio: Studio) -> None:
    # A twin profile edited through the API shows what each rule must give.
    for user_id in ("user-ada", "api-twin"):
        assert studio.api("PUT", f"/profiles/{user_id}", json={"profile": START}).status_code == 200
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/profiles/user-ada")
    expect(page.get_by_label("Profile (JSON)")).to_have_value(re.compile('"plan": "pro"'))

    merge = '{"plan": "team", "address": {"zip": null}, "phone_number": "+33600000000"}'
    _save(page, merge, "Merge")
    expect(page.locator(".flash")).to_contain_text("Merged into the profile")
    assert studio.api("POST", "/profiles/api-twin", json={"profile": json.loads(merge)}).is_success
    assert _profile(studio, "user-ada") == _profile(studio, "api-twin")
    assert _profile(studio, "user-ada") == {
        "email": "ada@example.org",
        "plan": "team",
        "address": {"city": "Lyon"},
        "phone_number": "+33600000000",
    }

    # An invalid document is refused at the field, with where it is wrong, and kept as typed.
    _save(page, '{"plan": "team",\n "oops"}', "Replace")
    error = page.locator("#profile-error")
    expect(error).to_contain_text("profile: not valid JSON")
    expect(error).to_contain_text("line 2")
    expect(page.get_by_label("Profile (JSON)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Profile (JSON)")).to_have_value('{"plan": "team",\n "oops"}')
    expect(page.get_by_role("radio", name=re.compile("Replace"))).to_be_checked()
    _save(page, '["not", "an", "object"]', "Merge")
    expect(error).to_contain_text("profile: Input should be a valid dictionary")
    _save(page, '{"a": {"b": "nul \\u0000 here"}}', "Merge")
    expect(error).to_contain_text("profile.a.b")
    assert _profile(studio, "user-ada")["plan"] == "team"
    screenshot(page, "profile-edit")

    replace = '{"email": "ada@example.com", "tags": ["a"]}'
    _save(page, replace, "Replace")
    expect(page.locator(".flash")).to_contain_text("Replaced the profile")
    assert studio.api("PUT", "/profiles/api-twin", json={"profile": json.loads(replace)}).is_success
    assert _profile(studio, "user-ada") == {"email": "ada@example.com", "tags": ["a"]}
    assert _profile(studio, "user-ada") == _profile(studio, "api-twin")
    expect(page.locator("#traits")).to_contain_text('"tags"')
    expect(page.locator("#traits")).not_to_contain_text("plan")

    operations = (
        '[{"op": "add", "path": "/tags/-", "value": "b"}, {"op": "remove", "path": "/email"}]'
    )
    _save(page, operations, "Patch")
    expect(page.locator(".flash")).to_contain_text("Patched the profile")
    twin = studio.api("PATCH", "/profiles/api-twin", json={"patch": json.loads(operations)})
    assert twin.is_success
    assert _profile(studio, "user-ada") == {"tags": ["a", "b"]}
    assert _profile(studio, "user-ada") == _profile(studio, "api-twin")
    # All operations apply, or none, as the API's PATCH: a failed test keeps the profile.
    _save(
        page,
        '[{"op": "add", "path": "/x", "value": 1},'
        ' {"op": "test", "path": "/tags/0", "value": "z"}]',
        "Patch",
    )
    expect(error).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("Patch"))).to_be_checked()
    assert _profile(studio, "user-ada") == {"tags": ["a", "b"]}
    _save(page, '{"op": "remove"}', "Patch")
    expect(error).to_contain_text("JSON Patch")


def test_delete_a_profile_asks_first_and_erases_as_the_api_does(page: Page, studio: Studio) -> None:
    assert studio.api("POST", "/profiles/rod-test", json={"profile": START}).is_success
    assert studio.api("PUT", "/lists/news/subscriptions/rod-test").status_code == 204
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/profiles/rod-test")

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete this profile").click()
    assert questions[0].startswith("Deletes rod-test's profile")
    assert "events, messages and automation runs are kept" in questions[0]
    assert _profile(studio, "rod-test") is not None

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this profile").click()
    expect(page).to_have_url(re.compile(r"/studio/profiles\?flash=deleted$"))
    expect(page.locator(".flash")).to_have_text("Profile deleted, as a Segment delete does.")
    assert _profile(studio, "rod-test") is None
    subscribers = studio.api("GET", "/lists/news/subscriptions").json()["items"]
    assert subscribers == []


def test_a_profiles_events_and_messages_page_beyond_the_first(page: Page, studio: Studio) -> None:
    for number in range(7):
        body = {"messageId": f"m-{number}", "type": "track", "event": f"Step {number}"}
        assert studio.send_segment({**body, "userId": "pager"}).status_code == 202
    sent = [
        studio.api(
            "POST",
            "/send",
            json={"message": {"to": {"user_id": "pager"}, "content": {"title": "Hi", "body": "x"}}},
        ).json()["requestId"]
        for _ in range(3)
    ]
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/profiles/pager?limit=3")
    rows = page.locator("#profile-list li a")
    expect(rows).to_have_text(["track/Step 6", "track/Step 5", "track/Step 4"])
    page.get_by_role("link", name="Older →").click()
    expect(rows).to_have_text(["track/Step 3", "track/Step 2", "track/Step 1"])
    page.get_by_role("link", name="Older →").click()
    expect(rows).to_have_text(["track/Step 0"])
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_role("link", name="← Newer").click()
    expect(rows).to_have_text(["track/Step 3", "track/Step 2", "track/Step 1"])

    page.goto(f"{studio.url}/studio/profiles/pager?show=messages&limit=2")
    expect(rows).to_have_text([sent[2], sent[1]])
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile("show=messages"))
    expect(rows).to_have_text([sent[0]])

    page.goto(f"{studio.url}/studio/profiles/pager?show=nothing")
    expect(page.locator("#show-error")).to_contain_text("'nothing' is not one of events")


def test_event_names_page(page: Page, studio: Studio) -> None:
    for number, name in enumerate(("Alpha", "Beta", "Gamma")):
        body = {"messageId": f"n-{number}", "type": "track", "event": name, "userId": "u"}
        assert studio.send_segment(body).status_code == 202
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/event-names?limit=2")
    names = page.locator("tbody tr td:first-child")
    expect(names).to_have_text(["track/Gamma", "track/Beta"])
    page.get_by_role("link", name="Older →").click()
    expect(names).to_have_text(["track/Alpha"])
    page.get_by_role("link", name="← Newer").click()
    expect(names).to_have_text(["track/Gamma", "track/Beta"])


def _processed(studio: Studio, message_id: str) -> bool:
    response = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_tenants_list_and_a_tenants_members(page: Page, studio: Studio) -> None:
    for number, user_id in enumerate(("amy", "ben", "cat")):
        body = {
            "messageId": f"g-{number}",
            "type": "group",
            "groupId": "acme",
            "traits": {"name": "Acme Inc", "plan": "enterprise"},
            "userId": user_id,
        }
        assert studio.send_segment(body).status_code == 202
    other = {"messageId": "g-other", "type": "group", "groupId": "globex", "userId": "amy"}
    assert studio.send_segment(other).status_code == 202
    for message_id in ("g-0", "g-1", "g-2", "g-other"):
        wait_for(lambda message_id=message_id: _processed(studio, message_id), what="processed")
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Tenants").click()
    ids = page.locator("#tenants tbody td:first-child")
    expect(ids).to_have_text(["acme", "globex"])
    page.get_by_label("Id or name").fill("inc")
    page.get_by_role("button", name="Filter").click()
    expect(ids).to_have_text(["acme"])
    screenshot(page, "tenants")

    page.get_by_role("link", name="acme").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    expect(page.locator("#properties")).to_contain_text('"plan": "enterprise"')
    expect(page.locator("#members a")).to_have_text(["amy", "ben", "cat"])
    page.goto(f"{studio.url}/studio/tenants/acme?limit=2")
    expect(page.locator("#members a")).to_have_text(["amy", "ben"])
    page.get_by_role("link", name="Next page →").click()
    expect(page.locator("#members a")).to_have_text(["cat"])
    page.get_by_role("link", name="cat", exact=True).click()
    page.get_by_role("navigation", name="Lists of this profile").get_by_role(
        "link", name="Tenants"
    ).click()
    expect(page.locator("#profile-list li a")).to_have_text(["acme"])


def test_lists_create_subscribe_unsubscribe_delete(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Lists").click()
    page.get_by_label("Id", exact=True).fill("acme..eng")
    page.get_by_role("button", name="Create list").click()
    expect(page.locator("#new-error")).to_contain_text("has an empty part")
    page.get_by_label("Id", exact=True).fill("acme.eng")
    page.get_by_label("Name").fill("Engineering")
    page.get_by_role("button", name="Create list").click()
    expect(page).to_have_url(re.compile(r"/studio/lists/acme\.eng\?flash=created$"))
    assert studio.api("GET", "/lists/acme.eng").json()["name"] == "Engineering"

    page.get_by_label("User id").fill("ada")
    page.get_by_label("Preferences (JSON, optional)").fill(
        '{"categories": {"news": {"status": "MAYBE"}}}'
    )
    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.locator("#form-error")).to_contain_text("preferences.categories.news.status")
    page.get_by_label("Preferences (JSON, optional)").fill(
        '{"categories": {"news": {"status": "OPTED_OUT"}}}'
    )
    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.locator(".flash")).to_have_text("Subscribed.")
    page.get_by_label("User id").fill("bob")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.locator("#subscribers tbody tr")).to_have_count(2)
    items = studio.api("GET", "/lists/acme.eng/subscriptions").json()["items"]
    assert [(item["recipientId"], item["preferences"]) for item in items] == [
        ("ada", {"categories": {"news": {"status": "OPTED_OUT"}}}),
        ("bob", None),
    ]

    page.goto(f"{studio.url}/studio/lists")
    expect(page.locator("#lists tbody td:first-child")).to_have_text(["acme.eng"])
    page.get_by_label("Id or pattern").fill("other.*")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#lists")).to_contain_text("No list matches")
    page.get_by_label("Id or pattern").fill("acme.*")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#lists tbody td:first-child")).to_have_text(["acme.eng"])
    screenshot(page, "lists")
    page.get_by_role("link", name="acme.eng").click()

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.locator("#subscribers tr", has_text="ada").get_by_role("button").click()
    expect(page.locator(".flash")).to_have_text("Unsubscribed.")
    assert questions[0].startswith("Unsubscribes ada from acme.eng")
    items = studio.api("GET", "/lists/acme.eng/subscriptions").json()["items"]
    assert [item["recipientId"] for item in items] == ["bob"]

    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete this list").click()
    expect(page).to_have_url(re.compile(r"/studio/lists\?flash=deleted$"))
    assert "cannot be restored" in questions[1]
    assert studio.api("GET", "/lists/acme.eng").status_code == 404
    assert studio.api("PUT", "/lists/acme.eng/restore").status_code == 404


def test_topics_create_edit_round_trip_and_delete(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Preference topics").click()
    page.get_by_label("Id", exact=True).fill("product-updates")
    page.get_by_label("Name").fill("Product updates")
    page.get_by_label("Default").select_option("OPTED_OUT")
    page.get_by_role("button", name="Create topic").click()
    expect(page.locator(".flash")).to_have_text("Topic created.")
    created = studio.api("GET", "/preferences/topics/product-updates").json()
    assert (created["name"], created["default_status"]) == ("Product updates", "OPTED_OUT")

    # An unchanged Save stores the topic as it was.
    page.get_by_role("button", name="Save topic").click()
    expect(page.locator(".flash")).to_have_text("Saved.")
    again = studio.api("GET", "/preferences/topics/product-updates").json()
    assert {key: again[key] for key in ("topic_id", "name", "default_status")} == {
        key: created[key] for key in ("topic_id", "name", "default_status")
    }

    page.get_by_label("Name (shown to recipients)").fill("News")
    page.get_by_label("Default for users who made no choice").select_option("REQUIRED")
    page.get_by_role("button", name="Save topic").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("News")
    edited = studio.api("GET", "/preferences/topics/product-updates").json()
    assert (edited["name"], edited["default_status"]) == ("News", "REQUIRED")
    page.goto(f"{studio.url}/studio/topics")
    row = page.locator("#topics tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("News")
    expect(row).to_contain_text("REQUIRED")
    screenshot(page, "topics")

    # The user's preference per topic, on their profile.
    preference = {
        "topic": {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["email"]}
    }
    assert studio.api("PUT", "/users/ada/preferences/product-updates", json=preference).is_success
    page.goto(f"{studio.url}/studio/profiles/ada?show=preferences")
    expect(page.locator("#profile-list li")).to_contain_text(
        ["News (product-updates): OPTED_IN (topic default REQUIRED) via email"]
    )

    template = {"content": {"email": {"subject": "Hi", "text": "x"}}, "topic_id": "product-updates"}
    assert studio.api("PUT", "/notifications/digest", json=template).status_code == 201
    page.goto(f"{studio.url}/studio/topics/product-updates")
    expect(page.locator("#delete-title ~ .hint")).to_contain_text("digest")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this topic").click()
    expect(page.locator("#form-error")).to_contain_text("is used by notifications 'digest'")
    assert studio.api("GET", "/preferences/topics/product-updates").status_code == 200

    assert studio.api("DELETE", "/notifications/digest").status_code == 204
    page.goto(f"{studio.url}/studio/topics/product-updates")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete this topic").click()
    expect(page.locator(".flash")).to_have_text("Topic deleted.")
    assert questions[0].startswith("Deletes the topic product-updates and every user's choice")
    assert studio.api("GET", "/preferences/topics/product-updates").status_code == 404
