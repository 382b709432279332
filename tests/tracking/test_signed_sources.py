"""Signed sources: Segment's Webhooks destination with X-Signature (HMAC-SHA1, hex)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Keys, bearer, wait_for
from tests.tracking.helpers import event_record, stored_events
from tidings.ingest.signature import first_element, verify
from tidings.models import SignedSource
from tidings.runtime import Runtime

SHARED_SECRET = "bac20417-segment-shared-secret"


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def js_stringify(value: Any) -> bytes:
    """What Segment's `JSON.stringify` sends: compact, non-ASCII as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def event(message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Shipped",
        "userId": "hooked-user",
        "messageId": message_id,
        "timestamp": "2026-11-30T10:00:00.000Z",
        "properties": {"order": message_id, "city": "Zürich"},
        **extra,
    }


def create_source(client: TestClient, key: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/sources", json={"name": "Segment webhooks", **body}, headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliver(client: TestClient, source: dict[str, Any], body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    return client.post(source["path"], content=body, headers=headers)


def failures(runtime: Runtime, source_id: str) -> int:
    with runtime.database.read() as session:
        row = session.scalars(select(SignedSource).where(SignedSource.id == source_id)).one()
        return row.signature_failures


@pytest.fixture
def source(client: TestClient, keys: Keys) -> dict[str, Any]:
    return create_source(client, keys.test, secret=SHARED_SECRET)


def test_a_signed_event_is_accepted_and_processed(
    client: TestClient, keys: Keys, source: dict[str, Any]
) -> None:
    body = js_stringify(event("hook-1"))
    response = deliver(client, source, body, hmac_hex(SHARED_SECRET, body))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}

    def processed() -> dict[str, Any] | None:
        record = event_record(client, keys.test, "hook-1")
        return record if record["status"] == "processed" else None

    record = wait_for(processed, what="signed event processed")
    assert record["name"] == "track/Order Shipped"
    assert record["payload"]["properties"] == {"order": "hook-1", "city": "Zürich"}
    # It belongs to the source's environment only.
    other = client.get("/integrations/segment/events/hook-1", headers=bearer(keys.production))
    assert other.status_code == 404


def test_an_upper_case_signature_is_the_same_hex(
    client: TestClient, runtime: Runtime, source: dict[str, Any]
) -> None:
    body = js_stringify(event("hook-upper"))
    response = deliver(client, source, body, hmac_hex(SHARED_SECRET, body).upper())
    assert response.status_code == 200, response.text
    assert [row["message_id"] for row in stored_events(runtime)] == ["hook-upper"]


def test_a_wrong_signature_is_401_counted_and_stores_nothing(
    client: TestClient, keys: Keys, runtime: Runtime, source: dict[str, Any]
) -> None:
    body = js_stringify(event("forged"))
    response = deliver(client, source, body, hmac_hex("not-the-secret-at-all", body))
    assert response.status_code == 401
    error = response.json()
    assert error["code"] == "invalid_signature"
    assert "HMAC-SHA1" in error["message"]
    tampered = body.replace(b"Order Shipped", b"Order Refunded")
    response = deliver(client, source, tampered, hmac_hex(SHARED_SECRET, body))
    assert response.json()["code"] == "invalid_signature"
    missing = deliver(client, source, body, None)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_signature"
    assert stored_events(runtime) == []
    assert failures(runtime, source["id"]) == 3
    shown = client.get(f"/sources/{source['id']}", headers=bearer(keys.test)).json()
    assert shown["signature_failures"] == 3
    assert shown["last_signature_failure_at"] is not None


def test_an_unknown_source_is_404(client: TestClient) -> None:
    response = client.post("/inbound/segment/webhook/src_nope", content=b"{}")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_source"


def test_a_batch_is_verified_by_its_first_element(
    client: TestClient, runtime: Runtime, source: dict[str, Any]
) -> None:
    batch = [event("batch-1"), event("batch-2"), event("batch-3")]
    body = js_stringify(batch)
    signature = hmac_hex(SHARED_SECRET, js_stringify(batch[0]))
    response = deliver(client, source, body, signature)
    assert response.status_code == 200, response.text
    assert [row["message_id"] for row in stored_events(runtime)] == [
        "batch-1",
        "batch-2",
        "batch-3",
    ]
    # The whole body signed is accepted too.
    body = js_stringify([event("batch-4")])
    assert deliver(client, source, body, hmac_hex(SHARED_SECRET, body)).status_code == 200


def test_a_batch_whose_first_element_is_signed_elsewhere_is_refused(
    client: TestClient, runtime: Runtime, source: dict[str, Any]
) -> None:
    signed = js_stringify(event("first"))
    body = js_stringify([event("other"), event("first")])
    response = deliver(client, source, body, hmac_hex(SHARED_SECRET, signed))
    assert response.status_code == 401
    assert stored_events(runtime) == []


def test_rotation_two_secrets_then_the_old_one_removed(
    client: TestClient, keys: Keys, runtime: Runtime, source: dict[str, Any]
) -> None:
    old_id = source["secrets"][0]["id"]
    added = client.post(f"/sources/{source['id']}/secrets", json={}, headers=bearer(keys.test))
    assert added.status_code == 201, added.text
    new_secret = added.json()["secret"]
    assert len(new_secret) >= 32
    assert [s["hint"] for s in added.json()["secrets"]] == [
        "…" + SHARED_SECRET[-4:],
        "…" + new_secret[-4:],
    ]

    for n, secret in enumerate((SHARED_SECRET, new_secret)):
        body = js_stringify(event(f"rot-{n}"))
        assert deliver(client, source, body, hmac_hex(secret, body)).status_code == 200

    third = client.post(f"/sources/{source['id']}/secrets", json={}, headers=bearer(keys.test))
    assert third.status_code == 409
    assert third.json()["code"] == "too_many_secrets"

    removed = client.delete(f"/sources/{source['id']}/secrets/{old_id}", headers=bearer(keys.test))
    assert removed.status_code == 200, removed.text
    assert len(removed.json()["secrets"]) == 1
    body = js_stringify(event("rot-old"))
    assert deliver(client, source, body, hmac_hex(SHARED_SECRET, body)).status_code == 401
    body = js_stringify(event("rot-new"))
    assert deliver(client, source, body, hmac_hex(new_secret, body)).status_code == 200
    assert [row["message_id"] for row in stored_events(runtime)] == ["rot-0", "rot-1", "rot-new"]

    last_id = removed.json()["secrets"][0]["id"]
    last = client.delete(f"/sources/{source['id']}/secrets/{last_id}", headers=bearer(keys.test))
    assert last.status_code == 409
    assert last.json()["code"] == "last_secret"


def test_secrets_are_stored_encrypted_and_never_shown_again(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    created = create_source(client, keys.test)
    secret = created["secret"]
    assert created["url"].endswith(f"/inbound/segment/webhook/{created['id']}")
    with runtime.database.read() as session:
        row = session.scalars(select(SignedSource)).one()
        assert secret.encode() not in row.secrets_ciphertext
    listed = client.get("/sources", headers=bearer(keys.test)).json()["results"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert secret not in json.dumps(listed)
    assert client.get("/sources", headers=bearer(keys.production)).json()["results"] == []
    hidden = client.get(f"/sources/{created['id']}", headers=bearer(keys.production))
    assert hidden.status_code == 404


def test_source_input_errors(client: TestClient, keys: Keys) -> None:
    short = client.post(
        "/sources", json={"name": "s", "secret": "short"}, headers=bearer(keys.test)
    )
    assert short.status_code == 400
    assert short.json()["field"] == "secret"
    create_source(client, keys.test)
    again = client.post("/sources", json={"name": "Segment webhooks"}, headers=bearer(keys.test))
    assert again.status_code == 409
    assert again.json()["code"] == "source_exists"
    assert client.post("/sources", json={"name": "x"}).status_code == 401


def test_deleting_a_source_stops_its_webhook(
    client: TestClient, keys: Keys, source: dict[str, Any]
) -> None:
    response = client.delete(f"/sources/{source['id']}", headers=bearer(keys.test))
    assert response.status_code == 204
    body = js_stringify(event("after-delete"))
    assert deliver(client, source, body, hmac_hex(SHARED_SECRET, body)).status_code == 404


def test_an_invalid_event_in_a_signed_batch_is_400_naming_it(
    client: TestClient, runtime: Runtime, source: dict[str, Any]
) -> None:
    batch = [event("fine"), {"type": "track", "userId": "u"}]
    body = js_stringify(batch)
    response = deliver(client, source, body, hmac_hex(SHARED_SECRET, js_stringify(batch[0])))
    assert response.status_code == 400
    assert response.json()["field"] == "[1].event"
    assert stored_events(runtime) == []


@pytest.mark.parametrize(
    ("body", "first"),
    [
        (b'[{"a":"]},\\"x"},{"b":2}]', b'{"a":"]},\\"x"}'),
        (b'  [ {"a":[1,{"c":"d"}]} , 2]', b'{"a":[1,{"c":"d"}]}'),
        (b'["only"]', b'"only"'),
        (b"[]", None),
        (b'{"a":1}', None),
        (b"[1", None),
    ],
)
def test_first_element_is_cut_from_the_raw_bytes(body: bytes, first: bytes | None) -> None:
    assert first_element(body) == first


def test_verify_needs_a_signature_and_a_secret() -> None:
    body = b'{"a":1}'
    assert verify(body, hmac_hex("k" * 16, body), ["x" * 16, "k" * 16])
    assert not verify(body, None, ["k" * 16])
    assert not verify(body, hmac_hex("k" * 16, body), [])
    assert not verify(body, "zz", ["k" * 16])


def test_a_signed_batch_over_the_json_limits_is_refused_naming_the_item(
    client: TestClient, runtime: Runtime, source: dict[str, Any]
) -> None:
    wide = js_stringify([event("fine"), event("wide", properties={"n": 0})]).replace(
        b'"n":0', b'"n":123456789012345678901234567890'
    )
    response = deliver(client, source, wide, hmac_hex(SHARED_SECRET, wide))
    assert response.status_code == 400, response.text
    assert (response.json()["code"], response.json()["field"]) == (
        "invalid_number",
        "[1].properties.n",
    )
    deep = js_stringify([event("deep", properties={})]).replace(
        b'"properties":{}', b'"properties":' + b'{"a":' * 300 + b"1" + b"}" * 300
    )
    response = deliver(client, source, deep, hmac_hex(SHARED_SECRET, deep))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "json_too_deep"
    assert stored_events(runtime) == []
