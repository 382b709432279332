"""`GET /metrics` (a secret key) and `TIDINGS_METRICS_PORT`: events received and processed,
the backlog and its age, messages by status and provider, provider latency, render failures.

The counters are the process's, shared by every test in it: each test compares two scrapes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.automation.test_runs import put, setup_order_shipped
from tests.conftest import Keys, bearer, free_port
from tests.payloads import identify, track
from tests.processes import wait_for
from tests.smtp_sink import SmtpSink
from tidings.app import create_app
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.scrape.server import serve_metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient, key: str) -> Samples:
    response = client.get("/metrics", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_what_an_identify_and_a_track_did(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_order_shipped(client, keys.test, smtp_sink)
    put(
        client,
        keys.test,
        "/notifications/invoice",
        {"content": {"email": {"subject": "Invoice", "text": "{{ data.total | divided_by: 0 }}"}}},
    )
    before = scrape(client, keys.test)
    sent = {"status": "SENT", "provider": "smtp"}
    latency = {"provider": "smtp", "channel": "email"}

    first = identify(messageId="m-1", userId="u1", traits={"email": "ada@example.org", "name": "A"})
    for event in (
        first,
        track(messageId="m-2", userId="u1", event="Order Shipped", properties={"order_id": "7"}),
        first,  # a duplicate
    ):
        assert client.post("/inbound/segment", json=event, headers=bearer(keys.test)).is_success
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "invoice", "data": {"total": 3}}},
        headers=bearer(keys.test),
    )
    assert response.status_code == 202, response.text

    def done() -> Samples | None:
        after = scrape(client, keys.test)

        def grew(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        # The counters grow as each outcome is recorded; the backlog gauges read the rows,
        # which the delivery threads' group commit may write a moment later.
        finished = (
            grew("tidings_messages_total", **sent)
            and grew("tidings_messages_total", status="UNDELIVERABLE", provider="")
            and grew("tidings_events_processed_total", status="processed") >= 2
            and value(after, "tidings_events_backlog") == 0
            and value(after, "tidings_messages_backlog") == 0
        )
        return after if finished else None

    after = wait_for(done, what="the email sent, the invoice failed and both events processed")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tidings_events_received_total", outcome="accepted") == 2
    assert grew("tidings_events_received_total", outcome="duplicate") == 1
    assert grew("tidings_events_processed_total", status="processed") == 2
    assert grew("tidings_events_processed_total", status="failed") == 0
    assert grew("tidings_messages_total", **sent) == 1
    assert grew("tidings_messages_total", status="UNDELIVERABLE", provider="") == 1
    assert grew("tidings_provider_latency_seconds_count", **latency) == 1
    assert grew("tidings_provider_latency_seconds_sum", **latency) > 0
    assert grew("tidings_render_failures_total", channel="email") == 1
    assert value(after, "tidings_events_backlog") == 0
    assert value(after, "tidings_messages_backlog") == 0
    assert value(after, "tidings_events_backlog_age_seconds") == 0


def test_metrics_need_a_secret_key(client: TestClient, ingest_key: str) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["code"] == "missing_api_key"
    response = client.get("/metrics", headers=bearer(ingest_key))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_the_backlog_is_what_waits_in_the_database(runtime: Runtime, keys: Keys) -> None:
    # No consumer: what arrives stays `received` and ENQUEUED.
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        empty = scrape(client, keys.test)
        assert value(empty, "tidings_events_backlog") == 0
        assert value(empty, "tidings_messages_backlog") == 0
        for message_id in ("w-1", "w-2"):
            response = client.post(
                "/inbound/segment", json=track(messageId=message_id), headers=bearer(keys.test)
            )
            assert response.status_code == 202
        response = client.post(
            "/send",
            json={"message": {"to": {"email": "a@example.org"}, "content": {"body": "hi"}}},
            headers=bearer(keys.test),
        )
        assert response.status_code == 202, response.text
        waiting = scrape(client, keys.test)
    assert value(waiting, "tidings_events_backlog") == 2
    assert value(waiting, "tidings_messages_backlog") == 1
    assert value(waiting, "tidings_events_backlog_age_seconds") >= 0
    assert ("tidings_messages_backlog_age_seconds", frozenset()) in waiting


def _served(settings: Settings, runtime: Runtime) -> Iterator[str]:
    started = serve_metrics(settings, runtime.database)
    assert started is not None
    server, thread = started
    try:
        yield f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_metrics_port_serves_the_same_text_on_loopback(runtime: Runtime) -> None:
    assert serve_metrics(runtime.settings, runtime.database) is None  # no port: no server
    settings = runtime.settings.model_copy(update={"metrics_port": free_port()})
    for url in _served(settings, runtime):
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(url)
        assert response.status_code == 200
        samples = parse(response.text)
        assert ("tidings_events_backlog", frozenset()) in samples
        assert any(name == "tidings_events_received_total" for name, _ in samples)


def test_the_scrape_says_which_threads_held_the_write_lock(runtime: Runtime, keys: Keys) -> None:
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        before = scrape(client, keys.test)
        response = client.post(
            "/inbound/segment", json=track(messageId="lock-1"), headers=bearer(keys.test)
        )
        assert response.status_code == 202
        after = scrape(client, keys.test)
    names = {name for name, _ in after}
    lock_families = {name for name in names if name.startswith("tidings_write_lock_")}
    if not runtime.database.is_sqlite:
        assert lock_families == set()  # the server orders its writers itself
        return
    assert lock_families == {
        "tidings_write_lock_acquisitions_total",
        "tidings_write_lock_wait_seconds_total",
        "tidings_write_lock_held_seconds_total",
    }
    writer = {"thread": "ingest-writer"}
    grew = value(after, "tidings_write_lock_acquisitions_total", **writer) - value(
        before, "tidings_write_lock_acquisitions_total", **writer
    )
    assert grew == 1
    assert value(after, "tidings_write_lock_held_seconds_total", **writer) > 0
    assert value(after, "tidings_write_lock_wait_seconds_total", **writer) >= 0
