"""Retrying a failed run from its failed step: POST /automations/runs/{run_id}/retry."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.automation.test_runs import put, put_broken, run_in, runs_of, segment
from tests.conftest import Keys, bearer, wait_for
from tests.payloads import track


def _failed_run(client: TestClient, key: str, user_id: str) -> dict[str, Any]:
    put_broken(client, key)
    segment(client, key, track(messageId=f"m-{user_id}", userId=user_id, event="Broken"))
    (run,) = wait_for(
        lambda: runs_of(client, key, template_id="broken", status="ERROR", recipient=user_id),
        what="the run in ERROR",
    )
    return run_in(client, key, run["run_id"], "ERROR")


def test_a_failed_run_retried_runs_its_failed_step_again_and_records_the_retry(
    client: TestClient, keys: Keys
) -> None:
    failed = _failed_run(client, keys.test, "u-retry")
    first_step, failed_step = failed["steps"]
    assert failed_step["status"] == "ERROR"
    # The cause is fixed: the template the send step names exists again.
    put(client, keys.test, "/notifications/no-such-template", {"content": {"sms": {"text": "Hi"}}})

    response = client.post(f"/automations/runs/{failed['run_id']}/retry", headers=bearer(keys.test))
    assert response.status_code == 202, response.text
    answered = response.json()
    assert answered["status"] == "PROCESSING"
    assert answered["error"] is None
    assert answered["step_index"] == 1
    # The failed step's record is set aside in the retry, with who retried it and when.
    (retry,) = answered["retries"]
    assert retry["position"] == 1
    assert retry["action"] == "send"
    assert "no-such-template" in retry["error"]
    assert retry["by"].startswith("API key ")
    assert retry["at"] >= failed["finished_at"]
    assert "retries" not in answered["context"]

    done = run_in(client, keys.test, failed["run_id"], "PROCESSED", "ERROR")
    assert done["status"] == "PROCESSED"
    assert [step["status"] for step in done["steps"]] == ["PROCESSED", "PROCESSED"]
    # The step before the failed one did not run again; the send step made its message.
    assert done["steps"][0]["created_at"] == first_step["created_at"]
    assert done["steps"][1]["message_id"].startswith("msg_")
    assert done["retries"] == answered["retries"]


def test_only_a_failed_run_can_be_retried(client: TestClient, keys: Keys) -> None:
    failed = _failed_run(client, keys.test, "u-twice")
    put(client, keys.test, "/notifications/no-such-template", {"content": {"sms": {"text": "Hi"}}})
    path = f"/automations/runs/{failed['run_id']}/retry"
    assert client.post(path, headers=bearer(keys.test)).status_code == 202
    run_in(client, keys.test, failed["run_id"], "PROCESSED")

    again = client.post(path, headers=bearer(keys.test))
    assert again.status_code == 409
    assert again.json() == {
        "code": "run_not_failed",
        "message": f"Run {failed['run_id']!r} is PROCESSED; only a run that failed (ERROR) can "
        "be retried from its failed step. Start a new run instead "
        "(POST /automations/{id}/invoke).",
        "field": "run_id",
    }
    assert len(run_in(client, keys.test, failed["run_id"], "PROCESSED")["retries"]) == 1


def test_a_run_that_fails_again_can_be_retried_again(client: TestClient, keys: Keys) -> None:
    failed = _failed_run(client, keys.test, "u-again")
    path = f"/automations/runs/{failed['run_id']}/retry"
    # Not fixed: the step fails again, and the run is back in ERROR.
    assert client.post(path, headers=bearer(keys.test)).status_code == 202
    again = run_in(client, keys.test, failed["run_id"], "ERROR")
    assert [step["status"] for step in again["steps"]] == ["PROCESSED", "ERROR"]
    assert len(again["retries"]) == 1
    put(client, keys.test, "/notifications/no-such-template", {"content": {"sms": {"text": "Hi"}}})
    assert client.post(path, headers=bearer(keys.test)).status_code == 202
    done = run_in(client, keys.test, failed["run_id"], "PROCESSED")
    assert [retry["position"] for retry in done["retries"]] == [1, 1]


def test_retrying_an_unknown_run_is_a_404(client: TestClient, keys: Keys) -> None:
    response = client.post("/automations/runs/run_nope/retry", headers=bearer(keys.test))
    assert response.status_code == 404
    assert response.json()["code"] == "run_not_found"
    assert response.json()["field"] == "run_id"
