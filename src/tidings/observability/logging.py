"""`TIDINGS_LOG_FORMAT=json`: one JSON object per log line, with the trace it belongs to.

Each line holds `time` (UTC, ISO 8601), `level`, `logger`, `message`, `trace_id` and
`span_id` when the line was logged inside a span (tracing on), `exc_info` with the
traceback of an exception, and any `extra=` fields the call passed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.observability import tracing

# The attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = tracing.trace_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()
