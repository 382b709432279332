"""`/webhooks/endpoints` and `/webhooks/deliveries`: registering, changing, rotating and
deleting endpoints; the deliveries log, its filters, and replay."""

from __future__ import annotations

from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from tests.conftest import Keys, bearer, wait_for
from tests.webhook_out.receiver import Receiver
from tests.webhook_out.support import deliveries, register
from tidings.runtime import Runtime
from tidings.webhook_out import service
from tidings.webhook_out.events import RUN_FAILED, Emission
from tidings.workspace.service import Scope, resolve_keys


def test_an_endpoint_is_registered_with_its_secret_shown_once(
    client: TestClient, keys: Keys, receiver: Receiver
) -> None:
    url = receiver.answer("/hooks")
    created = register(client, keys.test, url, "message.sent", "run.failed", description="Billing")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["event_types"] == ["message.sent", "run.failed"]
    assert created["enabled"] is True
    assert created["secret_hint"] == "…" + secret[-4:]

    shown = client.get(f"/webhooks/endpoints/{created['id']}", headers=bearer(keys.test))
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    assert secret not in shown.text
    listed = client.get("/webhooks/endpoints", headers=bearer(keys.test)).json()["results"]
    assert [row["id"] for row in listed] == [created["id"]]
    # Another environment's key sees none of it.
    other = client.get("/webhooks/endpoints", headers=bearer(keys.production)).json()
    assert other["results"] == []
    missing = client.get(f"/webhooks/endpoints/{created['id']}", headers=bearer(keys.production))
    assert missing.status_code == 404
    assert missing.json()["code"] == "unknown_webhook_endpoint"


def test_bad_endpoints_are_refused_with_the_one_error_shape(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    unknown = client.post(
        "/webhooks/endpoints",
        json={"url": "https://example.com/h", "event_types": ["message.lost"]},
        headers=headers,
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"].startswith("event_types")
    internal = client.post(
        "/webhooks/endpoints",
        json={"url": "http://10.0.0.7/hooks", "event_types": ["message.sent"]},
        headers=headers,
    )
    assert internal.status_code == 400
    assert internal.json()["code"] == "outbound_refused"
    assert "TIDINGS_OUTBOUND_ALLOW" in internal.json()["message"]
    not_http = client.post(
        "/webhooks/endpoints",
        json={"url": "ftp://example.com/h", "event_types": ["message.sent"]},
        headers=headers,
    )
    assert not_http.status_code == 400
    assert not_http.json()["field"] == "url"
    too_long = client.post(
        "/webhooks/endpoints",
        json={"url": "https://example.com/" + "a" * 2000, "event_types": ["message.sent"]},
        headers=headers,
    )
    assert too_long.status_code == 400


def test_event_types_change_what_the_endpoint_receives(
    client: TestClient, keys: Keys, runtime: Runtime, receiver: Receiver
) -> None:
    created = register(client, keys.test, receiver.answer("/h"), "message.sent")
    scope = _scope(runtime, keys)

    assert _emit(runtime, scope, RUN_FAILED) == []
    changed = client.patch(
        f"/webhooks/endpoints/{created['id']}",
        json={"event_types": ["run.failed", "message.sent"], "description": "ops"},
        headers=bearer(keys.test),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["message.sent", "run.failed"]
    assert changed.json()["description"] == "ops"
    assert len(_emit(runtime, scope, RUN_FAILED)) == 1

    disabled = client.patch(
        f"/webhooks/endpoints/{created['id']}",
        json={"enabled": False},
        headers=bearer(keys.test),
    )
    assert disabled.json()["enabled"] is False
    assert _emit(runtime, scope, RUN_FAILED) == []


def test_a_rotated_secret_is_shown_once_and_the_old_one_still_signs_for_a_while(
    client: TestClient, keys: Keys, runtime: Runtime, receiver: Receiver
) -> None:
    created = register(client, keys.test, receiver.answer("/rotating"), "run.failed")
    rotated = client.post(
        f"/webhooks/endpoints/{created['id']}/rotate-secret", headers=bearer(keys.test)
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    assert rotated.json()["secret_hint"] == "…" + new_secret[-4:]

    _emit(runtime, _scope(runtime, keys), RUN_FAILED)
    (request,) = wait_for(lambda: receiver.to("/rotating"), what="the signed request")
    assert request.verified(new_secret)["type"] == "run.failed"
    assert Webhook(created["secret"]).verify(request.body, request.headers)["type"] == "run.failed"


def test_the_deliveries_log_pages_filters_and_replays(
    client: TestClient, keys: Keys, runtime: Runtime, receiver: Receiver
) -> None:
    good = register(client, keys.test, receiver.answer("/good"), "run.failed")
    bad = register(client, keys.test, receiver.answer("/bad", 500), "run.failed")
    scope = _scope(runtime, keys)
    for _ in range(3):
        _emit(runtime, scope, RUN_FAILED)
    wait_for(
        lambda: len(receiver.to("/good")) == 3 and len(receiver.to("/bad")) == 3,
        what="each event at each endpoint",
    )
    wait_for(
        lambda: len(deliveries(client, keys.test, status="succeeded")) == 3,
        what="three succeeded deliveries",
    )
    failed = wait_for(
        lambda: [
            d for d in deliveries(client, keys.test, endpoint_id=bad["id"]) if d["attempts"] == 1
        ],
        what="the failing endpoint's first attempts recorded",
    )
    assert all(d["status"] == "pending" for d in failed)
    first = failed[0]
    assert first["response"]["status"] == 500
    assert first["response"]["body"].startswith("answer 500 to /bad")
    assert len(first["response"]["body"]) == 1024
    assert first["response"]["latency_ms"] >= 0
    assert "only a 2xx" in first["response"]["error"]

    headers = bearer(keys.test)
    page = client.get("/webhooks/deliveries", params={"limit": 4}, headers=headers).json()
    assert len(page["results"]) == 4
    assert page["paging"]["more"] is True
    rest = client.get(
        "/webhooks/deliveries",
        params={"limit": 4, "cursor": page["paging"]["cursor"]},
        headers=headers,
    ).json()
    ids = [d["id"] for d in page["results"] + rest["results"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 6
    assert rest["paging"]["more"] is False
    only_good = deliveries(client, keys.test, endpoint_id=good["id"], event_type="run.failed")
    assert {d["endpoint_id"] for d in only_good} == {good["id"]}
    assert (
        client.get("/webhooks/deliveries", params={"status": "lost"}, headers=headers).status_code
        == 400
    )

    # Replay a delivery the good endpoint got: a new delivery, same body and webhook-id.
    original = only_good[-1]
    replayed = client.post(f"/webhooks/deliveries/{original['id']}/replay", headers=headers)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replay_of"] == original["id"]
    assert replayed.json()["event_id"] == original["event_id"]
    wait_for(lambda: len(receiver.to("/good")) == 4, what="the replayed request")
    requests = receiver.to("/good")
    again = [r for r in requests if r.headers["webhook-id"] == original["event_id"]]
    assert len(again) == 2
    assert again[0].body == again[1].body
    assert again[1].verified(good["secret"])["type"] == "run.failed"
    single = client.get(f"/webhooks/deliveries/{original['id']}", headers=headers).json()
    assert single["payload"]["type"] == "run.failed"

    # Deleting an endpoint deletes its log; a replay of a gone delivery is a 404.
    assert client.delete(f"/webhooks/endpoints/{bad['id']}", headers=headers).status_code == 204
    assert deliveries(client, keys.test, endpoint_id=bad["id"]) == []
    gone = client.post(f"/webhooks/deliveries/{first['id']}/replay", headers=headers)
    assert gone.status_code == 404


def _scope(runtime: Runtime, keys: Keys) -> Scope:
    with runtime.database.read() as session:
        return resolve_keys(session, runtime.cipher, [keys.test])[keys.test]


def _emit(runtime: Runtime, scope: Scope, event_type: str) -> list[int]:
    with runtime.database.write() as (session, outbox):
        return service.emit(
            session, outbox, Emission(scope.environment_id, event_type, {"run_id": "run_1"})
        )
