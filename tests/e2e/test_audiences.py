"""Audiences against a live `tidings serve`, driven by Segment events only: identify and
track move a user into "viewed pricing twice, not upgraded", the entry starts an automation
that emails them through the SMTP sink, and a later upgrade moves them out."""

from __future__ import annotations

from typing import Any

from tests.conftest import Serve, wait_for
from tests.e2e.test_automations import _client
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

PRICING_HOT = {
    "name": "Viewed pricing twice, not upgraded",
    "condition": {
        "all": [
            {"trait": "plan", "equals": "free"},
            {"event": "Viewed Pricing", "at_least": 2, "within": "7 days"},
            {"not": {"event": "Upgraded"}},
        ]
    },
}
NUDGE = {
    "name": "Upgrade nudge",
    "triggers": [{"source": "audience", "audience": "pricing-hot", "on": "enter"}],
    "steps": [
        {
            "action": "send",
            "content": {
                "title": "Still thinking it over, {{ profile.name }}?",
                "body": "Here is 20% off your first year.",
            },
        }
    ],
}


def _event(kind: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "userId": "u1", "messageId": message_id, **fields}


def test_segment_events_move_a_user_into_an_audience_that_emails_and_out_on_upgrade(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("PUT", "/audiences/pricing-hot", PRICING_HOT)
    call("PUT", "/automations/upgrade-nudge", NUDGE)

    def members() -> list[str]:
        items = call("GET", "/audiences/pricing-hot/members").json()["items"]
        return [item["member_id"] for item in items]

    traits = {"email": "u1@example.org", "name": "Ada", "plan": "free"}
    call("POST", "/inbound/segment", _event("identify", "identify-1", traits=traits))
    call("POST", "/inbound/segment", _event("track", "view-1", event="Viewed Pricing"))
    wait_for(
        lambda: call("GET", "/integrations/segment/events/view-1").json()["status"] == "processed",
        what="the first view processed",
    )
    assert members() == []
    assert smtp_sink.messages == []
    call("POST", "/inbound/segment", _event("track", "view-2", event="Viewed Pricing"))
    wait_for(lambda: members() == ["u1"], what="u1's entry")
    # The event's record says what it did.
    effects = call("GET", "/integrations/segment/events/view-2").json()["effects"]
    assert "entered audience 'pricing-hot'" in effects
    assert any(line.startswith("started automation 'upgrade-nudge'") for line in effects)
    (mail,) = wait_for(lambda: smtp_sink.messages, what="the nudge email")
    assert mail["To"] == "u1@example.org"
    assert mail["Subject"] == "Still thinking it over, Ada?"

    call("POST", "/inbound/segment", _event("track", "upgraded", event="Upgraded"))
    wait_for(lambda: members() == [], what="u1's exit")
    (stay,) = call("GET", "/audiences/pricing-hot/history").json()["items"]
    assert stay["member_id"] == "u1"
    assert stay["left_at"] is not None
    # A third view after the upgrade: still out, and no second email.
    call("POST", "/inbound/segment", _event("track", "view-3", event="Viewed Pricing"))
    wait_for(
        lambda: call("GET", "/integrations/segment/events/view-3").json()["status"] == "processed",
        what="the third view processed",
    )
    assert members() == []
    assert len(smtp_sink.messages) == 1
