"""A broadcast against a live `tidings serve`: a list of a few users each get one email
through the SMTP sink, paced at the environment's rate, and a transactional /send made
while the broadcast is mid-way reaches its recipient before the broadcast's last email."""

from __future__ import annotations

from typing import Any

from tests.conftest import Serve, wait_for
from tests.e2e.test_automations import _client
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

USERS = [f"reader-{n}" for n in range(4)]
NEWS = {
    "name": "News",
    "content": {
        "email": {"subject": "News for {{ profile.name }}", "text": "Issue {{ data.issue }}"}
    },
}


def test_a_broadcast_emails_a_list_once_each_and_a_password_reset_goes_ahead(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    # One recipient a second: the broadcast takes a few seconds, and the reset is sent
    # after its first email.
    server = serve(TIDINGS_BROADCAST_RATE="1")
    call = _client(settings, server)
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("PUT", "/notifications/news", NEWS)
    for user in USERS:
        call(
            "POST", f"/profiles/{user}", {"profile": {"email": f"{user}@example.org", "name": user}}
        )
    call(
        "PUT",
        "/lists/readers/subscriptions",
        {"recipients": [{"recipientId": user} for user in USERS]},
    )
    created = call(
        "POST",
        "/broadcasts",
        {
            "broadcast_id": "issue-7",
            "template": "news",
            "to": {"list_id": "readers"},
            "data": {"issue": 7},
        },
    ).json()
    assert created["status"] == "running"

    wait_for(lambda: smtp_sink.messages, what="the broadcast's first email")
    call(
        "POST",
        "/send",
        {
            "message": {
                "to": {"email": "reset@example.org"},
                "content": {"title": "Reset your password", "body": "Here is the link"},
            }
        },
    )

    def all_sent() -> list[Any] | None:
        mails = smtp_sink.messages
        return mails if len(mails) == len(USERS) + 1 else None

    mails = wait_for(all_sent, what="every email")
    recipients = [mail["To"] for mail in mails]
    assert sorted(recipients) == sorted(
        [f"{user}@example.org" for user in USERS] + ["reset@example.org"]
    )
    # The reset did not wait for the broadcast to finish.
    assert recipients.index("reset@example.org") < len(recipients) - 1
    assert all(
        mail["Subject"].startswith("News for reader-")
        for mail in mails
        if mail["To"] != "reset@example.org"
    )

    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = call("GET", "/broadcasts/issue-7").json()
        done = view["status"] == "completed" and view["counts"]["sent"] == len(USERS)
        return view if done else None

    view = wait_for(finished, what="the broadcast's counts")
    assert view["counts"] == {
        "targeted": len(USERS),
        "sent": len(USERS),
        "suppressed": 0,
        "failed": 0,
        "canceled": 0,
        "pending": 0,
    }
    # Each reader got exactly one email, even after everything settled.
    assert len(smtp_sink.messages) == len(USERS) + 1
