"""API authentication: key scopes on every route, malformed Authorization headers, and the key
checked before the body."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.payloads import identify, track
from tests.tracking.helpers import stored_events
from tidings.dependencies import authenticate, authenticate_ingest
from tidings.ingest.tracking import PATHS as TRACKING_PATHS
from tidings.routing import ApiRoute
from tidings.runtime import Runtime
from tidings.workspace.scopes import INGEST
from tidings.workspace.service import create_key

INGEST_ROUTES = {"/inbound/segment", "/debug", *TRACKING_PATHS}
# Routes whose credential is not an API key, and why.
NOT_BY_API_KEY = {
    "/health": "public",
    "/": "public: links to Studio and the API reference",
    "/favicon.ico": "public",
    "/docs": "public: the API reference, as /openapi.json",
    "/redoc": "public: the API reference, as /openapi.json",
    "/providers/catalog": "public: the provider types and their config schemas, no data",
    "/inbound/segment/webhook/{source_id}": "the source's signature",
    "/callbacks/sendgrid": "the vendor's signature",
    "/t/o/{token}": "the tracking token's signature (a mail client's open pixel)",
    "/t/c/{token}": "the tracking token's signature (a recipient's click)",
    "/callbacks/twilio": "the vendor's signature",
    "/callbacks/postmark": "the vendor's basic-auth credentials",
    "/callbacks/mailgun": "the vendor's signature",
    "/callbacks/resend": "the vendor's signature",
    "/callbacks/vonage": "the vendor's signature (GET and POST)",
    "/callbacks/ses": "the vendor's signature",
    "/unsubscribe/{token}": "the signed unsubscribe token",
    "/inbox/messages": "an inbox token",
    "/inbox/messages/count": "an inbox token",
    "/inbox/messages/read-all": "an inbox token",
    "/inbox/messages/{message_id}/read": "an inbox token",
    "/inbox/messages/{message_id}/unread": "an inbox token",
    "/inbox/messages/{message_id}/archive": "an inbox token",
    "/inbox/stream": "an inbox token",
}


@pytest.fixture
def ingest_key(runtime: Runtime) -> str:
    with runtime.database.write() as (session, _):
        key = create_key(session, runtime.cipher, "test", INGEST).key
    assert key is not None
    return key


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route of the app, through the routers it includes."""
    for route in app.routes:
        included = getattr(route, "original_router", None)
        for candidate in included.routes if included is not None else [route]:
            if isinstance(candidate, APIRoute):
                yield candidate


def uses(route: APIRoute, check: object) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is check:
            return True
        pending.extend(dependency.dependencies)
    return False


def test_an_ingest_key_gets_403_on_every_route_but_the_ingest_ones(
    client: TestClient, ingest_key: str
) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    called = 0
    for route in api_routes(app):
        if route.path in NOT_BY_API_KEY:
            assert not uses(route, authenticate)
            assert not uses(route, authenticate_ingest)
            continue
        # So that the key is checked before the body (test_the_key_is_checked_before_the_body).
        assert isinstance(route, ApiRoute), f"{route.path}: not built with ApiRoute"
        if route.path in INGEST_ROUTES:
            assert not uses(route, authenticate), f"{route.path} would refuse ingest keys"
            continue
        # Every other route is the secret API: it takes a key, and only a secret one.
        assert uses(route, authenticate), f"{route.path} is not authenticated by API key"
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in route.methods:
            response = client.request(method, path, headers=bearer(ingest_key), json={})
            assert response.status_code == 403, (method, path, response.text)
            body = response.json()
            assert body["code"] == "insufficient_scope", (method, path)
            assert "needs a `secret` key" in body["message"]
            assert body["field"] is None
            called += 1
    assert called > 60  # the whole API, not a few routes


def test_an_ingest_key_sends_events_and_passes_debug(
    client: TestClient, runtime: Runtime, ingest_key: str
) -> None:
    debug = client.post("/debug", headers=bearer(ingest_key))
    assert debug.status_code == 200
    assert debug.json()["environment"] == "test"
    segment = client.post("/inbound/segment", json=identify(), headers=bearer(ingest_key))
    assert segment.status_code == 202, segment.text
    tracked = client.post(
        "/v1/track",
        json={"userId": "u1", "event": "Signed Up", "messageId": "v1-1", "writeKey": ingest_key},
    )
    assert tracked.status_code == 200, tracked.text
    batch = client.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "u2", "event": "E", "messageId": "b-1"}]},
        headers=bearer(ingest_key),
    )
    assert batch.status_code == 200, batch.text
    assert {row["message_id"] for row in stored_events(runtime)} == {
        "segment-test-message-iskh4123",
        "v1-1",
        "b-1",
    }
    # Courier's inbound endpoint is the server API: a secret key.
    courier = client.post(
        "/inbound/courier",
        json={"event": "E", "messageId": "c-1", "type": "track", "properties": {}},
        headers=bearer(ingest_key),
    )
    assert courier.status_code == 403
    assert courier.json()["code"] == "insufficient_scope"
    assert {row["message_id"] for row in stored_events(runtime)} == {
        "segment-test-message-iskh4123",
        "v1-1",
        "b-1",
    }


def test_a_secret_key_still_calls_the_whole_api(client: TestClient, keys: Keys) -> None:
    assert client.post("/debug", headers=bearer(keys.test)).status_code == 200
    assert client.get("/notifications", headers=bearer(keys.test)).status_code == 200
    assert client.post("/inbound/segment", json=track(), headers=bearer(keys.test)).status_code == (
        202
    )


MALFORMED = [
    b"Basic \xc3\xa9\xc3\xa9",  # UTF-8 bytes: not ASCII once decoded
    b"Basic \xff\xfe\xfd",  # not UTF-8 at all
    b"Basic !!!!",  # not base64
    b"Basic " + base64.b64encode(b"\xff\xfe:"),  # base64 of bytes that are not UTF-8
]


@pytest.mark.parametrize("header", MALFORMED)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/inbound/segment"),  # the ingest fast path
        ("POST", "/v1/track"),  # the Tracking API's fast path
        ("POST", "/v1/batch"),
        ("POST", "/send"),
        ("POST", "/debug"),
        ("GET", "/profiles/u1"),
        ("POST", "/inbox/tokens"),
        ("GET", "/inbox/messages/count"),
    ],
)
def test_a_malformed_authorization_header_is_a_401(
    client: TestClient, header: bytes, method: str, path: str
) -> None:
    response = client.request(
        method,
        path,
        content=json.dumps(track() if path != "/v1/batch" else {"batch": [track()]}),
        headers={"Authorization": header, "Content-Type": "application/json"},  # type: ignore[dict-item]
    )
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "invalid_authorization"
    assert "base64" in body["message"]
    assert "Bearer" in body["message"]


NOT_JSON = b'{"message": oops'
KEY_FIRST_ROUTES = [
    ("POST", "/inbound/segment"),
    ("POST", "/inbound/courier"),
    ("POST", "/v1/track"),
    ("POST", "/v1/batch"),
    ("POST", "/debug"),
    ("POST", "/send"),
    ("POST", "/profiles/u1"),
    ("PUT", "/notifications/n1"),
    ("PUT", "/lists/l1"),
    ("POST", "/automations/invoke"),
    ("POST", "/inbox/tokens"),
]


@pytest.mark.parametrize(("method", "path"), KEY_FIRST_ROUTES)
def test_the_key_is_checked_before_the_body(
    client: TestClient, keys: Keys, ingest_key: str, method: str, path: str
) -> None:
    json_type = {"Content-Type": "application/json"}
    for body in (NOT_JSON, b'{"unexpected": ["shape"]}', b""):
        missing = client.request(method, path, content=body, headers=json_type)
        if path.startswith("/v1/") and body != b'{"unexpected": ["shape"]}':
            # The Tracking API's key may be in the body (analytics.js puts it there): a body
            # that is not JSON is answered as such when no header holds a key.
            assert missing.status_code == 400, (body, missing.text)
            assert missing.json()["code"] == "invalid_json"
        else:
            assert missing.status_code == 401, (body, missing.text)
            assert missing.json()["code"] == "missing_api_key"
        wrong = client.request(method, path, content=body, headers={**json_type, **bearer("no")})
        assert wrong.status_code == 401, (body, wrong.text)
        assert wrong.json()["code"] == "invalid_api_key"
        if path not in INGEST_ROUTES:
            scoped = client.request(
                method, path, content=body, headers={**json_type, **bearer(ingest_key)}
            )
            assert scoped.status_code == 403, (body, scoped.text)
            assert scoped.json()["code"] == "insufficient_scope"
    if path.startswith("/v1/"):
        # A Tracking API body that cannot be read at all: broken gzip, or over the size limit.
        for body, extra in (
            (b"not gzip", {"Content-Encoding": "gzip"}),
            (b"x" * (600 * 1024), {}),
        ):
            wrong = client.request(
                method, path, content=body, headers={**json_type, **extra, **bearer("no")}
            )
            assert wrong.status_code == 401, wrong.text
            assert wrong.json()["code"] == "invalid_api_key"
            with_key = client.request(
                method, path, content=body, headers={**json_type, **extra, **bearer(ingest_key)}
            )
            assert with_key.status_code == 400, with_key.text
    # With a valid key, the same body is a 400 that says what is wrong with it.
    checked = client.request(
        method, path, content=NOT_JSON, headers={**json_type, **bearer(keys.test)}
    )
    if path != "/debug":  # /debug takes no body
        assert checked.status_code == 400, checked.text
        assert checked.json()["code"] in ("invalid_json", "invalid_request")
