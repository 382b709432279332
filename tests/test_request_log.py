"""Every error answer leaves one line in the log (status, method, path, code, key id), never
the key; `tidings serve --access-log` (TIDINGS_ACCESS_LOG) adds a line for every request."""

from __future__ import annotations

import base64
import logging
import re
import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests import processes
from tests.conftest import Keys, Serve, bearer, free_port, start_tidings
from tests.processes import HTTP_TIMEOUT, wait_for
from tidings.app import create_app
from tidings.config import Settings
from tidings.ingest.validation import MAX_EVENT_BYTES
from tidings.runtime import Runtime

LOGGER = "tidings.http_errors"
WRONG_KEY = "tdg_test_0000000000000000000000000000wrong"
EVENT = {"type": "track", "userId": "u1", "event": "Order Shipped", "messageId": "m-1"}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def refusals(log: str, status: int, method: str, path: str) -> list[str]:
    pattern = re.compile(rf"refused {status} {method} {re.escape(path)} code=\S+ key_id=\S+ ")
    return [line for line in log.splitlines() if pattern.search(line)]


def the_refusal(log: str, status: int, method: str, path: str) -> dict[str, str]:
    """The one line for that request, as its key=value fields; it is logged at WARNING."""
    lines = refusals(log, status, method, path)
    assert len(lines) == 1, f"expected one line for {status} {method} {path}:\n{log}"
    assert " WARNING " in lines[0]
    return dict(re.findall(r"(\w+)=(\S+)", lines[0]))


def test_serve_logs_each_refused_ingest_request_once_without_the_key(
    serve: Serve, keys: Keys
) -> None:
    server = serve()
    url = server.url
    segment = f"{url}/inbound/segment"

    wrong = httpx.post(segment, json=EVENT, headers=bearer(WRONG_KEY), timeout=HTTP_TIMEOUT)
    assert wrong.status_code == 401
    malformed = httpx.post(
        segment, content=b'{"type": "track",', headers=bearer(keys.test), timeout=HTTP_TIMEOUT
    )
    assert malformed.status_code == 400
    too_large = httpx.post(
        segment,
        content=b" " * (MAX_EVENT_BYTES + 1),
        headers=bearer(keys.test),
        timeout=HTTP_TIMEOUT,
    )
    assert too_large.status_code == 413
    # The Tracking API: the key in Basic auth, or `writeKey` in the body (analytics.js).
    not_a_batch = httpx.post(
        f"{url}/v1/batch",
        json={"batch": "not a list"},
        headers=basic(keys.production),
        timeout=HTTP_TIMEOUT,
    )
    assert not_a_batch.status_code == 400
    in_body = httpx.post(
        f"{url}/v1/import",
        json={"writeKey": keys.test, "batch": [{"type": "track"}]},
        timeout=HTTP_TIMEOUT,
    )
    assert in_body.status_code == 400
    accepted = httpx.post(segment, json=EVENT, headers=bearer(keys.test), timeout=HTTP_TIMEOUT)
    assert accepted.status_code == 202
    server.stop()
    log = server.log_path.read_text()

    assert the_refusal(log, 401, "POST", "/inbound/segment") == {
        "code": "invalid_api_key",
        "key_id": "-",  # an unknown key has no id to name
        "client": "127.0.0.1",
    }
    assert the_refusal(log, 400, "POST", "/inbound/segment") == {
        "code": "invalid_json",
        "key_id": keys.test_id,
        "client": "127.0.0.1",
    }
    assert the_refusal(log, 413, "POST", "/inbound/segment") == {
        "code": "payload_too_large",
        "key_id": keys.test_id,
        "client": "127.0.0.1",
    }
    batch = the_refusal(log, 400, "POST", "/v1/batch")
    assert (batch["code"], batch["key_id"]) == ("invalid_batch", keys.production_id)
    imported = the_refusal(log, 400, "POST", "/v1/import")
    assert (imported["code"], imported["key_id"]) == (in_body.json()["code"], keys.test_id)
    # Five refusals, five lines; the accepted event adds none.
    assert len([line for line in log.splitlines() if " refused " in line]) == 5
    for secret in (WRONG_KEY, keys.test, keys.production):
        assert secret not in log
    assert "Bearer" not in log
    assert "Basic" not in log


@pytest.fixture
def caplog_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="tidings.http_errors")
    return caplog


def lines_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if record.name == "tidings.http_errors"
    ]


def test_the_api_routes_refusals_name_the_accepted_key(
    client: TestClient, keys: Keys, caplog_warnings: pytest.LogCaptureFixture
) -> None:
    missing = client.get("/profiles/nobody", headers=bearer(keys.test))
    assert missing.status_code == 404
    no_key = client.get("/profiles/nobody")
    assert no_key.status_code == 401
    invalid = client.post(
        "/send", content=b"{not json", headers={**bearer(keys.test), "content-type": "x/json"}
    )
    assert invalid.status_code == 400
    wrong_method = client.delete("/health")
    assert wrong_method.status_code == 405
    nul = client.get("/profiles/a%00b?token=secret-in-query", headers=bearer(keys.test))
    assert nul.status_code == 400
    crafted = client.get("/no-such-page%0Afake refused line")
    assert crafted.status_code == 404
    unsubscribe = client.get("/unsubscribe/not-a-real-link-token")
    assert unsubscribe.status_code == 404
    assert client.get("/health").status_code == 200

    lines = lines_of(caplog_warnings)
    expected = [
        f"refused 404 GET /profiles/nobody code={missing.json()['code']} key_id={keys.test_id} ",
        "refused 401 GET /profiles/nobody code=missing_api_key key_id=- ",
        f"refused 400 POST /send code={invalid.json()['code']} key_id={keys.test_id} ",
        "refused 405 DELETE /health code=method_not_allowed key_id=- ",
        "refused 400 GET '/profiles/a\\x00b' code=invalid_url key_id=- ",
        "refused 404 GET '/no-such-page\\nfake refused line' code=not_found key_id=- ",
        f"refused 404 GET /unsubscribe/<token> code={unsubscribe.json()['code']} key_id=- ",
    ]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)
        assert "\n" not in line
    for secret in ("secret-in-query", "not-a-real-link-token", keys.test):
        assert all(secret not in line for line in lines)
    assert all(record.levelno == logging.WARNING for record in caplog_warnings.records)


def test_a_5xx_answer_is_logged_at_error(
    client: TestClient, keys: Keys, caplog_warnings: pytest.LogCaptureFixture
) -> None:
    """Storage that fails gives 503 on ingest, and an ERROR line naming the key."""
    writer = client.app.state.ingest_writer

    async def failing_submit(items: object) -> object:
        raise OSError("disk full")

    writer.submit = failing_submit
    answer = client.post("/inbound/segment", json=EVENT, headers=bearer(keys.test))
    assert answer.status_code == 503
    (record,) = [r for r in caplog_warnings.records if r.name == "tidings.http_errors"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(
        f"failed 503 POST /inbound/segment code=storage_unavailable key_id={keys.test_id} "
    )


def test_a_bug_is_answered_in_the_one_shape_and_logged_once(
    runtime: Runtime, keys: Keys, caplog_warnings: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    studio = next(route.app for route in app.routes if getattr(route, "path", "") == "/studio")
    studio.add_api_route("/boom", boom)  # Studio is an app of its own, mounted

    with TestClient(app, raise_server_exceptions=False) as client:

        class BrokenKeyCheck:
            async def verify(self, key: str, client_address: str) -> None:
                raise RuntimeError("a bug in the key check")

        client.app.state.key_check = BrokenKeyCheck()
        route = client.get("/boom", headers=bearer(keys.test))
        fast = client.post("/v1/track", json=EVENT, headers=bearer(keys.test))
        in_studio = client.get("/studio/boom")
    assert in_studio.status_code == 500
    for answer in (route, fast):
        assert answer.status_code == 500
        assert answer.json()["code"] == "internal_error"
    assert fast.headers["access-control-allow-origin"] == "*"
    lines = lines_of(caplog_warnings)
    assert [line.split(" code=")[0] for line in lines] == [
        "failed 500 GET /boom",
        "failed 500 POST /v1/track",
        "failed 500 GET /studio/boom",
    ]
    assert all(r.levelno == logging.ERROR for r in caplog_warnings.records if r.name == LOGGER)


def _wait_until_serving(url: str, process: object, log_path: Path) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(
        healthy,
        timeout=processes.START_SECONDS,
        what=f"tidings serve on {url}",
        details=lambda: log_path.read_text(errors="replace"),
    )


def test_the_access_log_is_off_unless_asked_for(
    serve: Serve, settings: Settings, keys: Keys, tmp_path: Path
) -> None:
    quiet = serve("quiet.log")
    assert httpx.get(f"{quiet.url}/health", timeout=HTTP_TIMEOUT).status_code == 200
    quiet.stop()
    assert '"GET /health HTTP/1.1" 200' not in quiet.log_path.read_text()

    by_setting = serve("setting.log", TIDINGS_ACCESS_LOG="true")
    assert httpx.get(f"{by_setting.url}/health", timeout=HTTP_TIMEOUT).status_code == 200
    by_setting.stop()
    assert '"GET /health HTTP/1.1" 200' in by_setting.log_path.read_text()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "flag.log"
    process = start_tidings(settings, log_path, "serve", "--port", str(port), "--access-log")
    try:
        _wait_until_serving(url, process, log_path)
        answer = httpx.post(
            f"{url}/inbound/segment", json=EVENT, headers=bearer(keys.test), timeout=HTTP_TIMEOUT
        )
        assert answer.status_code == 202
    finally:
        processes.stop(process)
    log = log_path.read_text()
    assert '"POST /inbound/segment HTTP/1.1" 202' in log
    assert keys.test not in log


def test_serve_exits_with_an_error_when_its_port_is_taken(
    settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log_path = tmp_path / "taken.log"
        process = start_tidings(settings, log_path, "serve", "--port", str(port))
        try:
            assert process.wait(processes.scaled(processes.START_SECONDS)) == 3
        finally:
            processes.stop(process)
    assert "address already in use" in log_path.read_text().lower()
