"""The Suppressions page: the list with its filters, add, remove (it asks first), and CSV
export and import, each through the suppression service the API calls."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, screenshot, sign_in


def addresses(studio: Studio) -> list[tuple[str, str, str | None]]:
    response = studio.api("GET", "/suppressions")
    assert response.status_code == 200, response.text
    return [(e["channel"], e["address"], e["topic_id"]) for e in response.json()["items"]]


def test_suppressions_are_listed_added_removed_exported_and_imported(
    page: Page, studio: Studio, tmp_path: Path
) -> None:
    added = studio.api(
        "POST",
        "/suppressions",
        json={
            "suppressions": [
                {"channel": "email", "address": "ada@example.org", "reason": "HARD_BOUNCE"},
                {"channel": "sms", "address": "+15555550100", "reason": "COMPLAINT"},
                {"channel": "email", "address": "bob@example.org", "topic_id": "promo"},
            ]
        },
    )
    assert added.status_code == 200, added.text
    sign_in(page, studio)
    page.get_by_role("link", name="Suppressions").click()
    expect(page.get_by_role("heading", name="Suppressions", level=1)).to_be_visible()
    rows = page.locator("#suppressions tbody tr")
    expect(rows.locator("td:nth-child(2)")).to_have_text(
        ["ada@example.org", "+15555550100", "bob@example.org"]
    )
    expect(rows.nth(2).locator("td:nth-child(3)")).to_have_text("promo")
    expect(rows.nth(0).locator("td:nth-child(3)")).to_have_text("every topic")

    page.locator("#channel").select_option("sms")
    page.get_by_role("button", name="Filter").click()
    expect(rows.locator("td:nth-child(2)")).to_have_text(["+15555550100"])
    assert "channel=sms" in page.url
    page.goto(f"{studio.url}/studio/suppressions?address=BOB")
    expect(rows.locator("td:nth-child(2)")).to_have_text(["bob@example.org"])
    page.goto(f"{studio.url}/studio/suppressions")

    # Add: a bad address is refused at its field, a good one normalized.
    page.locator("#new-address").fill("not an address")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_role("alert")).to_contain_text("is not an email address")
    expect(page.locator("#new-address")).to_have_attribute("aria-invalid", "true")
    page.locator("#new-address").fill(" Carol@Example.org ")
    page.locator("#new-detail").fill("asked by phone")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_text("Added to the list.")).to_be_visible()
    expect(rows.nth(3).locator("td:nth-child(2)")).to_have_text("carol@example.org")
    expect(rows.nth(3).locator("td:nth-child(5)")).to_have_text("studio")
    screenshot(page, "suppressions")

    # Remove: it asks first; dismissed, nothing changes.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Remove ada@example.org").click()
    assert questions == [
        "Take ada@example.org off the email suppression list? Tidings sends to it again."
    ]
    expect(rows).to_have_count(4)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove bob@example.org").click()
    expect(page.get_by_text("Taken off the list.")).to_be_visible()
    expect(rows).to_have_count(3)
    assert ("email", "bob@example.org", "promo") not in addresses(studio)

    # Export; then an import: a file with a bad row imports nothing and names the line.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export the list as CSV").click()
    exported = Path(download.value.path()).read_text()
    assert exported.splitlines()[0] == "channel,address,topic_id,reason,source,detail,created_at"
    assert "email,carol@example.org,,MANUAL,studio,asked by phone," in exported

    bad = tmp_path / "bad.csv"
    bad.write_text("channel,address\nemail,dan@example.org\nemail,nope\n")
    page.get_by_label("CSV file").set_input_files(bad)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-error")).to_contain_text("line 3: The email address 'nope'")
    assert ("email", "dan@example.org", None) not in addresses(studio)

    good = tmp_path / "good.csv"
    good.write_text("channel,address,topic_id\nemail,dan@example.org,\nemail,carol@example.org,\n")
    page.get_by_label("CSV file").set_input_files(good)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported 2 entries: 1 new, 1 already on the list.")).to_be_visible()
    expect(rows.locator("td:nth-child(2)")).to_have_text(
        ["ada@example.org", "+15555550100", "carol@example.org", "dan@example.org"]
    )
    expect(rows.nth(3).locator("td:nth-child(5)")).to_have_text("import")
