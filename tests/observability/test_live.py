"""A real `tidings serve` configured by the standard variables: OTEL_TRACES_EXPORTER turns
tracing on (the console exporter here, which prints each span as JSON) and the W3C
`traceparent` of a Segment request is the trace's parent; TIDINGS_LOG_FORMAT=json makes
every log line a JSON object."""

from __future__ import annotations

import httpx
import orjson

from tests.conftest import Keys, Serve
from tests.payloads import SEGMENT_HEADERS, track
from tests.processes import wait_for

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def test_serve_exports_the_events_trace_and_logs_json(serve: Serve, keys: Keys) -> None:
    server = serve(
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="tidings-live",
        OTEL_BSP_SCHEDULE_DELAY="50",
        TIDINGS_LOG_FORMAT="json",
    )
    response = httpx.post(
        f"{server.url}/inbound/segment",
        json=track(messageId="m-live"),
        headers={
            **SEGMENT_HEADERS,
            "Authorization": f"Bearer {keys.test}",
            "traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01",
        },
    )
    assert response.status_code == 202, response.text
    refused = httpx.post(f"{server.url}/inbound/segment", json=track(), headers=SEGMENT_HEADERS)
    assert refused.status_code == 401

    def exported() -> set[str] | None:
        text = server.log_path.read_text(errors="replace")
        names = {
            name
            for name in ("ingest", "processing", "identity")
            if f'"name": "{name}"' in text and f'"trace_id": "0x{TRACE_ID}"' in text
        }
        return names if len(names) == 3 else None

    wait_for(exported, what="the spans on the console", details=server.log)
    log = server.log_path.read_text(errors="replace")
    assert '"service.name": "tidings-live"' in log
    (refusal,) = [orjson.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    assert refusal["level"] == "WARNING"
    assert refusal["message"].startswith("refused 401 POST /inbound/segment")
