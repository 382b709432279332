"""Traces, metrics and structured logs for the user's own tools (docs/observability.md)."""
