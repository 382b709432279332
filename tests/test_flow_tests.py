"""`tidings test PATH`: the shipped example flows pass (so `make test` runs them), a flow that
does not do what its file expects exits 1 with a diff and a JUnit failure, and delays of
days, cancelations, stubbed fetch-data and schedule ticks happen on the virtual clock."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tidings.config import Settings
from tidings.flowtest.compare import MESSAGE_SHOWN, compare, diff
from tidings.kit.time import frozen_at, utcnow

# `tidings test` runs each flow on a SQLite database of its own, whatever the settings say:
# the tests take `settings` only for the CLI's environment.
pytestmark = pytest.mark.backend_independent

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "flows"

WELCOME_WRONG = """
name: welcome expected wrongly
definitions:
  - kind: notification
    id: welcome
    content:
      email: {subject: "Welcome!", text: "Your trait1 is {{ profile.trait1 }}."}
  - kind: automation
    id: welcome
    triggers: [{source: segment, event: identify}]
    steps: [{action: send, template: welcome}]
events:
  - {at: +0s, type: identify, userId: rod-test, traits: {trait1: 2, email: t@example.org}}
expect:
  messages:
    - {at: +0s, to: rod-test, channel: email, subject: "Hello!"}
    - {at: +1h, to: rod-test, channel: email}
  runs:
    - {automation: welcome, user: rod-test, status: PROCESSED}
"""

DELAYED = """
name: a checkout reminder two days later, canceled for the cart that was bought
definitions:
  - kind: notification
    id: checkout-reminder
    content:
      email:
        subject: "Cart {{ data.cart_id }}"
        text: "{{ data.total }} in a {{ data.tier }} cart"
  - kind: notification
    id: thanks
    content:
      email: {subject: "Thanks", text: "Order {{ data.cart_id }}"}
  - kind: automation
    id: abandoned-checkout
    triggers: [{source: segment, event: track/Checkout Started}]
    cancelation_token: "{{ data.cart_id }}"
    steps:
      - {action: delay, duration: 2 days}
      - action: fetch-data
        webhook: {url: "https://shop.example.com/tiers/{{ recipient }}"}
        merge_strategy: overwrite
      - {action: send, template: checkout-reminder, if: "data.total > 0"}
  - kind: automation
    id: order-completed
    triggers: [{source: segment, event: track/Order Completed}]
    steps:
      - {action: cancel, cancelation_token: "{{ data.cart_id }}"}
      - {action: send, template: thanks}
http:
  - {url: "https://shop.example.com/tiers/u1", json: {tier: gold}}
events:
  - {at: +0s, type: identify, userId: u1, traits: {email: u1@example.com}}
  - {at: +0s, type: identify, userId: u2, traits: {email: u2@example.com}}
  - {at: +1h, type: track, userId: u1, event: Checkout Started,
     properties: {cart_id: a, total: 30}}
  - {at: +2h, type: track, userId: u2, event: Checkout Started,
     properties: {cart_id: b, total: 12}}
  - {at: +1d, type: track, userId: u2, event: Order Completed, properties: {cart_id: b}}
until: +5d
expect:
  messages:
    - {at: +1d, to: u2, template: thanks, subject: Thanks}
    - {at: +2d1h, to: u1, channel: email, template: checkout-reminder, subject: Cart a,
       address: u1@example.com, body: "30 in a gold cart"}
  runs:
    - {automation: abandoned-checkout, user: u1, status: PROCESSED}
    - {automation: abandoned-checkout, user: u2, status: CANCELED}
    - {automation: order-completed, user: u2, status: PROCESSED}
"""

SCHEDULED = """
name: a daily digest at 09:00 in Paris
definitions:
  - kind: notification
    id: digest
    content:
      email: {subject: "Digest", text: "Your digest"}
  - kind: automation
    id: daily-digest
    triggers:
      - {source: schedule, cron: "0 9 * * *", timezone: Europe/Paris, recipient: u1}
    steps:
      - {action: send, template: digest}
events:
  - {at: +0s, type: identify, userId: u1, traits: {email: u1@example.com}}
until: +2d
expect:
  messages:
    - {at: +23h, to: u1, template: digest}
    - {at: +1d23h, to: u1, template: digest}
  runs:
    - {automation: daily-digest, user: u1, status: PROCESSED}
    - {automation: daily-digest, user: u1, status: PROCESSED}
"""

# No definitions of its own: `--definitions` gives them.
CART_ELSEWHERE = """
name: definitions from --definitions
events:
  - {at: +0s, type: identify, userId: u3, traits: {email: u3@example.com}}
  - {at: +0s, type: track, userId: u3, event: Checkout Started, properties: {cart_id: c-3}}
expect:
  messages: [{at: +1h, to: u3, template: cart-reminder}]
"""


def test_the_example_flows_pass(settings: Settings, tmp_path: Path) -> None:
    junit = tmp_path / "flows.xml"
    result = run_cli(settings, "test", str(EXAMPLES), "--junit-xml", str(junit))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 0 failed" in result.stdout
    assert "PASS welcome email on the first identify only" in result.stdout
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    names = {case.get("name") for case in suite.iter("testcase")}
    assert "a cart left for an hour gets one reminder" in names
    assert not list(suite.iter("failure"))


def test_a_mismatch_exits_1_with_a_diff_and_a_junit_failure(
    settings: Settings, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "wrong.test.yaml").write_text(WELCOME_WRONG)
    (flows / "delayed.test.yaml").write_text(DELAYED)
    # The clock starts on a Monday at 09:00 UTC, 10:00 in Paris: the ticks are the next
    # mornings at 08:00 UTC.
    (flows / "scheduled.test.yaml").write_text(SCHEDULED)
    (flows / "elsewhere.test.yaml").write_text(CART_ELSEWHERE)
    junit = tmp_path / "junit.xml"
    definitions = EXAMPLES / "definitions" / "abandoned-cart.yaml"
    result = run_cli(
        settings, "test", str(flows), "--junit-xml", str(junit), "--definitions", str(definitions)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "FAIL welcome expected wrongly" in out
    assert "PASS a checkout reminder two days later" in out
    assert "PASS a daily digest at 09:00 in Paris" in out
    assert "PASS definitions from --definitions" in out
    assert "3 passed, 1 failed" in out
    # The diff: the subject that was sent against the one expected, and the message
    # expected at +1h that never came.
    assert '-    subject: "Hello!"' in out
    assert '+    subject: "Welcome!"' in out
    assert "-  - at: +1h" in out
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")
    (failure,) = list(suite.iter("failure"))
    assert failure.text is not None
    assert '+    subject: "Welcome!"' in failure.text


def test_a_file_that_cannot_be_read_names_the_field(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.test.yaml"
    bad.write_text("events:\n  - {at: soon, type: track, userId: u1, event: X}\n")
    result = run_cli(settings, "test", str(bad))
    assert result.returncode == 1
    assert "events[0].at" in result.stderr


def test_a_frozen_clock_is_what_utcnow_reads_until_released() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with frozen_at(start) as clock:
        assert utcnow() == start
        clock.advance(timedelta(days=2))
        assert utcnow() == start + timedelta(days=2)
    assert utcnow() > start + timedelta(days=300)


def test_matching_ignores_order_but_not_count() -> None:
    sent = [
        {"at": timedelta(0), "to": "u1", "channel": "email", "body": "Hello u1"},
        {"at": timedelta(0), "to": "u2", "channel": "sms", "body": "Hello u2"},
    ]
    swapped = [
        {"at": timedelta(0), "to": "u2", "channel": "sms"},
        {"at": timedelta(0), "to": "u1", "body_contains": "u1"},
    ]
    assert compare("messages", swapped, sent, MESSAGE_SHOWN).ok
    # One message too many: the one nobody expected is shown with all its fields.
    section = compare("messages", swapped[:1], sent, MESSAGE_SHOWN)
    assert not section.ok
    assert "+  - at: +0s" in diff([section])
    assert '+    body: "Hello u1"' in diff([section])
    # A part of the body that is not there shows the body that was sent.
    wrong = [{"to": "u1", "body_contains": "Goodbye"}, swapped[0]]
    section = compare("messages", wrong, sent, MESSAGE_SHOWN)
    assert not section.ok
    assert "-    body_contains: Goodbye" in diff([section])
    assert '+    body: "Hello u1"' in diff([section])
