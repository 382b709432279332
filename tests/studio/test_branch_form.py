"""Branches in Studio: the step form edits a branch's arms, conditions, nested steps (the same
step cards, to any depth) and else; the JSON view edits the same object; an unchanged save
changes nothing; the automation page shows the steps as a tree; a run's page says which arm
ran."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, sign_in
from tidings.studio import step_form

PLAN: dict[str, Any] = {
    "name": "Welcome by plan",
    "enabled": False,
    "triggers": [{"source": "segment", "event": "track/Signed In"}],
    "cancelation_token": None,
    "steps": [
        {
            "action": "branch",
            "branches": [
                {
                    "if": 'profile.plan == "pro"',
                    "steps": [
                        {"action": "send", "template": "pro", "ref": "pro_send"},
                        {
                            "action": "branch",
                            "branches": [{"if": "data.total > 10", "steps": []}],
                            "else": [{"action": "delay", "duration": "1 hour"}],
                        },
                    ],
                },
                {"if": 'profile.plan == "team"', "steps": []},
            ],
            "else": [
                {"action": "update-profile", "profile": {"nudged": True}, "merge": "soft-merge"},
                # A condition of two lines: the form shows this branch as JSON.
                {"action": "branch", "branches": [{"if": "data.a\n|| data.b", "steps": []}]},
            ],
            "ref": "plan",
        },
        {"action": "send", "template": "pro"},
    ],
}
EMAIL = {"content": {"email": {"subject": "Hello", "text": "Hello"}}}


def _posted(cards: list[step_form.StepCard], at: str = "steps") -> list[tuple[str, str]]:
    """What the browser posts for the cards (as in test_step_form_conversion)."""
    pairs = []
    for index, card in enumerate(cards):
        step = f"{at}[{index}]"
        pairs.append((f"{step}.action", card.action))
        if card.raw is not None:
            pairs.append((f"{step}:json", card.raw))
        pairs += [(f"{step}.{path}", value) for path, value in card.values.items()]
        pairs += [(f"{step}.{path}:kind", kind) for path, kind in card.kinds.items()]
        for number, arm in enumerate(card.arms):
            pairs.append((f"{step}.branches[{number}].if", arm.condition))
            pairs += _posted(arm.cards, f"{step}.branches[{number}].steps")
        if card.otherwise is not None:
            pairs.append((f"{step}.else:on", "1"))
            pairs += _posted(card.otherwise, f"{step}.else")
    return pairs


# ---------------------------------------------------------------------------------------------
# The conversion, without a browser


def test_a_branch_converts_to_cards_and_back_exactly() -> None:
    cards = step_form.cards_of(PLAN["steps"])
    branch = cards[0]
    conditions = [arm.condition for arm in branch.arms]
    assert conditions == ['profile.plan == "pro"', 'profile.plan == "team"']
    assert [card.action for card in branch.arms[0].cards] == ["send", "branch"]
    assert branch.otherwise is not None
    assert branch.otherwise[1].raw is not None  # a nested step the form cannot show
    assert branch.values == {"ref": "plan"}  # its arms are not widgets
    steps, errors = step_form.steps_of(step_form.cards_from_form(_posted(cards)))
    assert errors == {}
    assert steps == PLAN["steps"]


def test_a_branch_the_form_cannot_show_is_json_and_a_missing_else_stays_missing() -> None:
    odd = {"action": "branch", "branches": [{"if": "a\nb", "steps": []}]}
    (card,) = step_form.cards_of([odd])
    assert card.raw is not None
    plain = {"action": "branch", "branches": [{"if": "true", "steps": []}]}
    (card,) = step_form.cards_of([plain])
    assert card.otherwise is None
    assert step_form.steps_of(step_form.cards_from_form(_posted([card])))[0] == [plain]
    # An arm whose condition is left empty is posted without `if`: the service names it.
    empty = step_form.apply([card], "add-arm:steps[0]", {})
    assert step_form.steps_of(empty)[0][0]["branches"][1] == {"steps": []}


def test_nested_error_paths_are_shown_at_their_inputs() -> None:
    cards = step_form.cards_of(PLAN["steps"])
    name = step_form.error_name
    assert name("steps[0].branches[0].steps[0].template", cards) == (
        "steps[0].branches[0].steps[0].template"
    )
    assert name("steps[0].branches[1].if", cards) == "steps[0].branches[1].if"
    assert name("steps[0].branches[0].steps[1].else[0].duration", cards) == (
        "steps[0].branches[0].steps[1].else[0].duration"
    )
    assert name("steps[0].else[0].profile.x", cards) == "steps[0].else[0].profile"
    assert name("steps[0].else[1].branches[0].if", cards) == "steps[0].else[1]"
    assert name("steps[0].branches[0].steps[7].template", cards) == "steps[0]"
    assert name("steps[0].branches", cards) == "steps[0]"


def test_editing_operations_inside_a_branch() -> None:
    cards = step_form.apply([], "add", {"add_action": "branch"})
    assert len(cards[0].arms) == 1  # a new branch starts with one arm to fill in
    assert step_form.focus_after(cards, "add") == "steps-0-branches-0-if"
    cards = step_form.apply(cards, "add-arm:steps[0]", {})
    assert step_form.focus_after(cards, "add-arm:steps[0]") == "steps-0-branches-1-if"
    list_path = "steps[0].branches[0].steps"
    for action in ("send", "delay", "branch"):
        cards = step_form.apply(cards, f"add:{list_path}", {f"add_action@{list_path}": action})
    assert [card.action for card in cards[0].arms[0].cards] == ["send", "delay", "branch"]
    assert step_form.focus_after(cards, f"add:{list_path}") == (
        "steps-0-branches-0-steps-2-branches-0-if"
    )
    cards = step_form.apply(cards, f"up:{list_path}[1]", {})
    assert [card.action for card in cards[0].arms[0].cards] == ["delay", "send", "branch"]
    assert step_form.focus_after(cards, f"up:{list_path}[1]") == "card-steps-0-branches-0-steps-0"
    cards = step_form.apply(cards, f"remove:{list_path}[2]", {})
    cards = step_form.apply(cards, "add-else:steps[0]", {})
    assert cards[0].otherwise == []
    cards = step_form.apply(cards, "add:steps[0].else", {"add_action@steps[0].else": "cancel"})
    assert [card.action for card in cards[0].otherwise] == ["cancel"]
    cards = step_form.apply(cards, "remove-arm:steps[0].branches[1]", {})
    assert len(cards[0].arms) == 1
    before = step_form.steps_of(cards)
    cards = step_form.apply(cards, "remove-else:steps[0]", {})
    assert cards[0].otherwise is None
    assert "else" in before[0][0]
    assert "else" not in step_form.steps_of(cards)[0][0]
    # An operation on a path that is not there changes nothing.
    assert step_form.apply(cards, "remove:steps[0].branches[5].steps[0]", {}) == cards
    assert step_form.step_label("steps[1].branches[0].steps[2]") == "2, branch 1, step 3"
    assert step_form.step_label("steps[0].else[1]") == "1, else, step 2"


# ---------------------------------------------------------------------------------------------
# In the browser


def _templates(studio: Studio) -> None:
    for name in ("pro", "upgrade"):
        assert studio.api("PUT", f"/notifications/{name}", json=EMAIL).status_code == 201


def _add(page: Page, list_label: str, action: str) -> None:
    page.get_by_label(f"Add a step to {list_label}", exact=True).select_option(action)
    page.get_by_role("button", name=f"Add step to {list_label}", exact=True).click()


def test_build_a_branch_in_the_step_form(page: Page, studio: Studio) -> None:
    _templates(studio)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/new")
    page.locator("#id").fill("by-plan")
    page.locator("#triggers").fill("track/Signed In")
    page.get_by_label("Add a step", exact=True).select_option("branch")
    page.get_by_role("button", name="Add step", exact=True).click()

    condition = page.locator("#steps-0-branches-0-if")
    expect(condition).to_be_focused()
    condition.fill('profile.plan == "pro"')
    _add(page, "branch 1 of step 1", "send")
    nested = page.locator("#steps-0-branches-0-steps-0-template")
    expect(nested).to_be_focused()
    expect(condition).to_have_value('profile.plan == "pro"')  # kept across the swap
    nested.select_option("pro")
    page.get_by_role("button", name="Add else to step 1").click()
    _add(page, "else of step 1", "delay")
    page.locator("#steps-0-else-0-duration").fill("5 minuts")
    page.get_by_role("button", name="Save", exact=True).click()

    # The error is shown at the nested input it names, and what was typed is kept.
    delay = page.locator("#steps-0-else-0-duration")
    expect(delay).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#steps-0-else-0-duration-error")).to_contain_text(
        'steps[0].else[0].duration: "5 minuts" is not a duration'
    )
    expect(page.locator("#steps-0-branches-0-steps-0-template")).to_have_value("pro")
    delay.fill("5 minutes")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    saved = studio.api("GET", "/automations/by-plan").json()
    assert saved["steps"] == [
        {
            "action": "branch",
            "branches": [
                {"if": 'profile.plan == "pro"', "steps": [{"action": "send", "template": "pro"}]}
            ],
            "else": [{"action": "delay", "duration": "5 minutes"}],
        }
    ]

    # The automation page shows the saved steps as a tree.
    outline = page.locator(".step-outline")
    expect(outline.locator("ol > li > ul.branch-tree > li")).to_have_count(2)
    expect(outline.locator("ul.branch-tree > li").first).to_contain_text('if profile.plan == "pro"')
    expect(outline.locator("ul.branch-tree > li").first.locator("ol > li")).to_have_text(
        ["send pro"]
    )
    expect(outline.locator("ul.branch-tree > li").nth(1)).to_contain_text("else")
    expect(outline.locator("ul.branch-tree > li").nth(1).locator("ol > li")).to_contain_text(
        ["delay 5 minutes"]
    )

    # The JSON view holds the same object; an edit there shows in the form again.
    page.get_by_role("button", name="JSON", exact=True).click()
    text = page.locator("#steps")
    expect(text).to_contain_text('"branches"')
    text.fill(text.input_value().replace("5 minutes", "1 hour"))
    page.get_by_role("button", name="Form", exact=True).click()
    expect(page.locator("#steps-0-else-0-duration")).to_have_value("1 hour")
    page.get_by_role("button", name="Remove branch 1 of step 1").click()
    expect(page.locator("#steps-0-branches-0-if")).to_have_count(0)
    page.get_by_role("button", name="Add a branch to step 1").click()
    expect(page.locator("#steps-0-branches-0-if")).to_be_focused()
    page.get_by_role("button", name="Save", exact=True).click()
    # A branch whose condition is left empty is refused at that input.
    expect(page.locator("#steps-0-branches-0-if")).to_have_attribute("aria-invalid", "true")


def test_an_unchanged_save_of_nested_branches_changes_nothing(page: Page, studio: Studio) -> None:
    _templates(studio)
    response = studio.api("PUT", "/automations/by-plan", json=PLAN)
    assert response.status_code == 201, response.text
    before = studio.api("GET", "/automations/by-plan").json()
    assert before["steps"] == PLAN["steps"]
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/by-plan")
    expect(page.locator("#steps-0-branches-1-if")).to_have_value('profile.plan == "team"')
    expect(page.locator("#steps-0-branches-0-steps-1-branches-0-if")).to_have_value(
        "data.total > 10"
    )
    expect(page.locator("#steps-0-branches-0-steps-1-else-0-duration")).to_have_value("1 hour")
    expect(page.locator("#steps-0-else-1")).to_contain_text('"if": "data.a\\n|| data.b"')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    after = studio.api("GET", "/automations/by-plan").json()
    assert after["version"] == before["version"]
    assert after["steps"] == PLAN["steps"]

    page.get_by_role("button", name="JSON", exact=True).click()
    expect(page.locator("#steps")).to_be_visible()
    page.get_by_role("button", name="Form", exact=True).click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    assert studio.api("GET", "/automations/by-plan").json()["version"] == before["version"]


def test_the_run_page_says_which_arm_ran(page: Page, studio: Studio) -> None:
    assert studio.api("POST", "/profiles/ada", json={"profile": {"plan": "team"}}).is_success
    steps = [
        {
            "action": "branch",
            "branches": [
                {
                    "if": 'profile.plan == "pro"',
                    "steps": [{"action": "cancel", "cancelation_token": "x"}],
                },
                {
                    "if": 'profile.plan == "team"',
                    "steps": [{"action": "update-profile", "profile": {"team": True}}],
                },
            ],
        }
    ]
    response = studio.api(
        "POST", "/automations/invoke", json={"automation": {"steps": steps}, "recipient": "ada"}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["runId"]

    def done() -> bool:
        run = studio.api("GET", f"/automations/runs/{run_id}").json()
        return bool(run["status"] == "PROCESSED")

    wait_for(done, what="the run")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs/{run_id}")
    timeline = page.locator(".timeline").first.locator("> li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text("1. branch")
    expect(timeline.nth(0).locator(".branch-taken")).to_have_text(
        'took branch 2 (profile.plan == "team")'
    )
    expect(timeline.nth(1)).to_contain_text("1, branch 2, step 1. update-profile")
