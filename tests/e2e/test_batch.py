"""The batch step against a live `tidings serve`: a comment digest through Segment events with
real emails (5 `track/Comment Added` in 10 s become one email listing 5), and a batch that
outlives its worker: killed while the batch is open, a new worker sends the one digest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests import processes
from tests.conftest import Serve, Worker, wait_for
from tests.e2e.test_automations import Call, _client, _run
from tests.smtp_sink import SmtpSink
from tidings.config import Settings
from tidings.models import AutomationBatch, AutomationBatchItem
from tidings.runtime import Runtime

COMMENTS = [
    ("ada", "Looks good"),
    ("grace", "Ship it"),
    ("linus", "Needs a test"),
    ("ada", "Added one"),
    ("grace", "Merged"),
]
DIGEST_EMAIL = {
    "content": {
        "email": {
            "subject": "{{ data.batch.total_count }} new comments on {{ data.page }}",
            "text": "{% for comment in data.batch.items %}"
            "{{ comment.author }}: {{ comment.text }}\n"
            "{% endfor %}",
        }
    }
}
COMMENT_DIGEST = {
    "name": "Comment digest",
    "triggers": [{"source": "segment", "event": "track/Comment Added"}],
    "steps": [
        {"action": "batch", "window": "10 seconds", "batch_key": "{{ data.page }}"},
        {"action": "send", "template": "comment-digest"},
    ],
}


def _comment(number: int, author: str, text: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Comment Added",
        "userId": "u1",
        "messageId": f"comment-{number}",
        "properties": {"page": "Roadmap", "author": author, "text": text},
    }


def _setup(call: Call, smtp_sink: SmtpSink) -> None:
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("POST", "/profiles/u1", {"profile": {"email": "u1@example.org"}})
    call("PUT", "/notifications/comment-digest", DIGEST_EMAIL)
    call("PUT", "/automations/comment-digest", COMMENT_DIGEST)


def _comments(call: Call) -> None:
    for number, (author, text) in enumerate(COMMENTS, start=1):
        call("POST", "/inbound/segment", _comment(number, author, text))


def _runs(call: Call, status: str, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = call("GET", f"/automations/runs?status={status}").json()[
            "runs"
        ]
        return found if len(found) == count else None

    return wait_for(check, what=f"{count} {status} runs")


def _one_digest(call: Call, smtp_sink: SmtpSink) -> None:
    wait_for(lambda: smtp_sink.messages, timeout=60, what="the digest email")
    (email,) = smtp_sink.messages
    assert email["To"] == "u1@example.org"
    assert email["Subject"] == "5 new comments on Roadmap"
    body = email.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip().splitlines() == [
        f"{author}: {text}" for author, text in COMMENTS
    ]
    (opener,) = _runs(call, "PROCESSED", 1)
    batched = _runs(call, "BATCHED", 4)
    assert opener["event"] == "comment-1"
    for run in batched:
        assert run["error"].startswith(f"batched into run {opener['run_id']}")
        detail = _run(call, run["run_id"], "BATCHED")
        assert [step["action"] for step in detail["steps"]] == ["batch"]
    assert len(call("GET", "/messages").json()["results"]) == 1


def _open_batches(runtime: Runtime) -> tuple[int, int]:
    with runtime.database.read() as session:
        batches = session.scalars(select(func.count()).select_from(AutomationBatch)).one()
        items = session.scalars(select(func.count()).select_from(AutomationBatchItem)).one()
        return batches, items


def test_a_comment_digest_five_comments_in_ten_seconds_become_one_email(
    serve: Serve, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    _setup(call, smtp_sink)
    _comments(call)
    _one_digest(call, smtp_sink)
    assert _open_batches(runtime) == (0, 0)


def test_a_batch_outlives_a_worker_killed_while_it_is_open(
    serve: Serve, worker: Worker, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log")
    call = _client(settings, server)
    _setup(call, smtp_sink)
    _comments(call)
    _runs(call, "BATCHED", 4)
    _runs(call, "WAITING", 1)
    processes.kill(first)
    assert _open_batches(runtime) == (1, 5)
    assert smtp_sink.messages == []
    # A new worker (its sweeper, if the killed one held the wake-up) closes the batch once.
    worker("worker-2.log")
    _one_digest(call, smtp_sink)
    assert _open_batches(runtime) == (0, 0)
