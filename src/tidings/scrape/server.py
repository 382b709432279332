"""`TIDINGS_METRICS_PORT`: the scrape on a port of its own, without a key.

Bound to `TIDINGS_METRICS_HOST` (loopback unless set), so that only the machine itself (or
whatever the operator opens it to) can read it; `tidings serve` and `tidings worker` each
start one, so a worker, which answers no HTTP otherwise, can be scraped too."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from tidings.config import Settings
from tidings.db import Database
from tidings.scrape.service import registry_for


def serve_metrics(
    settings: Settings, database: Database
) -> tuple[WSGIServer, threading.Thread] | None:
    """Start the metrics server in a daemon thread when a port is set; None otherwise."""
    if settings.metrics_port is None:
        return None
    return start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=registry_for(database)
    )
