"""The Prometheus scrape: tidings.observability's counters with the backlog of events and
messages read from their tables, for `GET /metrics` (endpoints.py) and
TIDINGS_METRICS_PORT (server.py). Above the domains whose tables it reads."""
