"""One trace per Segment event: ingest, processing, identity, each run step, the message's
render and routing, each provider attempt, and a later delivery report, across the queue and
the delivery threads; the request's `traceparent` is its parent."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pytest_httpserver import HTTPServer

from tests.automation.test_runs import put, setup_email
from tests.callback.support import SENDGRID_PATH, TEMPLATE, configure
from tests.callback.test_sendgrid import PUBLIC_KEY, event, post
from tests.conftest import Keys, bearer
from tests.message.test_send_email import message_in
from tests.observability.conftest import of_trace, tree
from tests.payloads import SEGMENT_HEADERS, identify, track
from tests.processes import wait_for
from tests.smtp_sink import SmtpSink
from tidings.observability import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _segment(client: TestClient, key: str, body: dict[str, Any], **headers: str) -> None:
    response = client.post(
        "/inbound/segment", json=body, headers={**SEGMENT_HEADERS, **bearer(key), **headers}
    )
    assert response.status_code == 202, response.text


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _connected(spans: list[ReadableSpan], root_parent: int) -> None:
    """Every span's parent is a span of the trace, but the root's, which is `root_parent`."""
    ids = {span.context.span_id for span in spans if span.context is not None}
    (root,) = [span for span in spans if span.parent is None or span.parent.span_id not in ids]
    assert root.name == "ingest"
    assert root.parent is not None
    assert root.parent.span_id == root_parent
    assert root.parent.is_remote


def _setup_sendgrid(client: TestClient, key: str, httpserver: HTTPServer) -> None:
    configure(
        client,
        key,
        "sendgrid",
        {
            "api_key": "SG.secret",
            "from_email": "n@tidings.test",
            "base_url": httpserver.url_for(""),
            "event_webhook_public_key": PUBLIC_KEY,
        },
    )
    httpserver.expect_request(SENDGRID_PATH, method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-abc123"}
    )
    put(client, key, "/notifications/shipped", TEMPLATE)
    put(
        client,
        key,
        "/automations/order-shipped",
        {
            "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
            "steps": [
                {"action": "send", "template": "shipped"},
                {"action": "update-profile", "profile": {"notified": True}},
            ],
        },
    )


def test_a_track_is_one_trace_from_its_request_to_the_provider_and_the_vendors_report(
    client: TestClient, keys: Keys, httpserver: HTTPServer, spans: InMemorySpanExporter
) -> None:
    _setup_sendgrid(client, keys.test, httpserver)
    _segment(
        client, keys.test, identify(messageId="m-id", userId="u1", traits={"email": "a@x.org"})
    )
    _segment(
        client,
        keys.test,
        track(
            messageId="m-track",
            userId="u1",
            event="Order Shipped",
            properties={"order_id": "A1"},
        ),
        traceparent=TRACEPARENT,
    )
    trace_id = int(TRACE_ID, 16)
    (attempt,) = wait_for(
        lambda: _named(of_trace(spans, trace_id), "provider attempt"), what="the provider span"
    )
    assert attempt.attributes is not None
    message_id = str(attempt.attributes["tidings.message_id"])
    assert attempt.attributes["tidings.provider"] == "sendgrid"
    assert attempt.attributes["tidings.outcome"] == "sent"
    message_in(client, keys.test, message_id, "SENT")

    # Later, SendGrid reports the delivery: a span in the same trace.
    assert post(client, [event("delivered", message_id)]).status_code == 200
    (report,) = wait_for(
        lambda: _named(of_trace(spans, trace_id), "delivery event"), what="the report's span"
    )
    assert report.attributes is not None
    assert report.attributes["tidings.report"] == "delivered"
    assert report.attributes["tidings.applied"] == "applied"

    traced = of_trace(spans, trace_id)
    _connected(traced, int(PARENT_ID, 16))
    names = [span.name for span in traced]
    for name in ("ingest", "processing", "identity", "message", "render", "routing"):
        assert names.count(name) == 1, (name, tree(traced))
    assert names.count("run step") == 2  # the send and the update-profile
    by_id = {span.context.span_id: span for span in traced if span.context is not None}

    def parent_of(span: ReadableSpan) -> str:
        assert span.parent is not None
        return by_id[span.parent.span_id].name

    (processing,) = _named(traced, "processing")
    assert processing.attributes is not None
    assert processing.attributes["tidings.event_name"] == "track/Order Shipped"
    assert parent_of(processing) == "ingest"
    assert parent_of(_named(traced, "identity")[0]) == "processing"
    assert {parent_of(step) for step in _named(traced, "run step")} == {"processing"}
    assert parent_of(_named(traced, "message")[0]) == "run step"
    assert parent_of(_named(traced, "render")[0]) == "message"
    assert parent_of(_named(traced, "routing")[0]) == "message"
    assert parent_of(attempt) == "message"
    # A later report (or a retry) continues from the span that made the message.
    assert parent_of(report) == "run step"

    # The identify, sent without a traceparent, is a trace of its own.
    (identify_ingest,) = [
        span
        for span in spans.get_finished_spans()
        if span.name == "ingest"
        and span.attributes
        and span.attributes["tidings.message_id"] == "m-id"
    ]
    assert identify_ingest.parent is None
    assert identify_ingest.context is not None
    own = of_trace(spans, identify_ingest.context.trace_id)
    assert {"ingest", "processing", "identity"} <= {span.name for span in own}

    # The stored event carries the trace on: its context holds the ingest span's traceparent.
    stored = client.get("/integrations/segment/events/m-track", headers=bearer(keys.test)).json()
    (ingest,) = _named(traced, "ingest")
    assert ingest.context is not None
    assert stored["payload"]["context"]["traceparent"] == (
        f"00-{TRACE_ID}-{ingest.context.span_id:016x}-01"
    )


def test_without_tracing_nothing_is_stamped_and_no_span_is_made(
    client: TestClient, keys: Keys
) -> None:
    assert not tracing.enabled
    with tracing.span("ingest") as current:
        assert current is None
    assert tracing.current_traceparent() is None
    _segment(client, keys.test, track(messageId="m-plain"), traceparent=TRACEPARENT)
    stored = client.get("/integrations/segment/events/m-plain", headers=bearer(keys.test)).json()
    assert "context" not in stored["payload"]


def test_a_tracking_api_batch_shares_the_requests_trace(
    client: TestClient, keys: Keys, spans: InMemorySpanExporter
) -> None:
    body = {"batch": [track(messageId="b1", userId="u2"), track(messageId="b2", userId="u3")]}
    response = client.post(
        "/v1/batch",
        content=orjson.dumps(body),
        headers={
            **bearer(keys.test),
            "traceparent": TRACEPARENT,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    trace_id = int(TRACE_ID, 16)
    processing = wait_for(
        lambda: (
            (found := _named(of_trace(spans, trace_id), "processing")) and len(found) == 2 and found
        ),
        what="both events processed",
    )
    assert sorted(str((span.attributes or {})["tidings.message_id"]) for span in processing) == [
        "b1",
        "b2",
    ]
    assert len(_named(of_trace(spans, trace_id), "ingest")) == 1


def test_a_send_requests_traceparent_is_its_messages_trace(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, spans: InMemorySpanExporter
) -> None:
    setup_email(client, keys.test, smtp_sink)
    put(client, keys.test, "/profiles/u1", {"profile": {"email": "ada@example.org"}})
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "shipped"}},
        headers={**bearer(keys.test), "traceparent": TRACEPARENT},
    )
    assert response.status_code == 202, response.text
    trace_id = int(TRACE_ID, 16)
    wait_for(
        lambda: _named(of_trace(spans, trace_id), "provider attempt"), what="the provider span"
    )
    traced = of_trace(spans, trace_id)
    (request,) = [
        span
        for span in _named(traced, "request")
        if (span.attributes or {}).get("tidings.path") == "/send"
    ]
    assert request.attributes is not None
    assert request.attributes["tidings.status"] == 202
    assert request.parent is not None
    assert request.parent.span_id == int(PARENT_ID, 16)
    (message,) = _named(traced, "message")
    assert message.parent is not None
    assert request.context is not None
    assert message.parent.span_id == request.context.span_id


def test_tracing_is_on_only_when_an_exporter_is_named() -> None:
    assert tracing.wanted({}) is None
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "jaeger"}) is None
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"}) == "otlp"
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": " Console "}) == "console"
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert tracing.wanted(disabled) is None
    assert tracing.setup_from_environment({}) is False
    assert not tracing.enabled
