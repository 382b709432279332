"""Flow test files: what `tidings test PATH` reads (docs/testing.md, "Flow tests").

A file is one test, or several as YAML documents (`---`). Each is a mapping:

    name: abandoned cart reminds once          # default: the file's name
    start: 2026-01-05T09:00:00Z                # the virtual clock's start (default below)
    definitions: [...] | "path/to/definitions" # as `tidings apply` reads them
    http: [{url, method, status, json}]        # canned answers to fetch-data requests
    events: [{at: +0s, type: track, userId: u1, event: Checkout Started, ...}]
    until: +3d                                 # run the clock to here (default: until idle)
    expect:
      messages: [{at: +2d, to: u1, channel: email, template: x, subject: "...", ...}]
      runs: [{automation: x, user: u1, status: PROCESSED}]

Times are offsets from `start` ("+0s", "+3h", "+1 day 2 hours", "PT5M").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tidings.automation.apply import KINDS, ApplyError, Document, read_documents
from tidings.kit.duration import DurationError, parse_duration
from tidings.kit.time import parse_timestamp

# A Monday morning, so that send windows read the same in every run of a test.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TEST_SUFFIXES = (".test.yaml", ".test.yml")
MESSAGE_FIELDS = (
    "at",
    "to",
    "channel",
    "template",
    "address",
    "subject",
    "title",
    "body",
    "body_contains",
)
RUN_FIELDS = ("automation", "user", "status", "error_contains")
EVENT_TYPES = ("identify", "track", "group", "alias", "page", "screen", "delete")


class SpecError(ValueError):
    """A flow test file that cannot be run; the message names the file and the field."""


@dataclass(frozen=True)
class HttpStub:
    method: str
    url: str
    status: int
    body: Any


@dataclass(frozen=True)
class TimedEvent:
    at: timedelta
    body: dict[str, Any]


@dataclass(frozen=True)
class FlowTest:
    name: str
    source: str
    start: datetime
    documents: list[Document] | None
    events: list[TimedEvent]
    until: timedelta | None
    expected_messages: list[dict[str, Any]] | None
    expected_runs: list[dict[str, Any]] | None
    http: list[HttpStub] = field(default_factory=list)


def format_offset(delta: timedelta) -> str:
    """An offset as tests write it: "+0s", "+2d", "+1h30m", "+2d3h0m5s" without the zeros."""
    seconds = delta.total_seconds()
    sign = "-" if seconds < 0 else "+"
    remaining = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count = int(remaining // size)
        if count:
            parts.append(f"{count}{unit}")
            remaining -= count * size
    if remaining or not parts:
        whole = int(remaining)
        parts.append(f"{whole if whole == remaining else round(remaining, 3)}s")
    return sign + "".join(parts)


def parse_offset(value: Any, where: str) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise SpecError(f"{where}: {value!r} is not a time; write an offset such as +0s or +3h")
    text = value.strip()
    if text.startswith("+"):
        text = text[1:]
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def find_files(path: Path) -> list[Path]:
    """The test files under a directory (`*.test.yaml`, `*.test.yml`, at any depth, by path),
    or the one file given."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEST_SUFFIXES))
    if path.is_file():
        return [path]
    raise SpecError(f"{path}: no such file or directory")


def load_tests(path: Path, default_definitions: Path | None = None) -> list[FlowTest]:
    tests: list[FlowTest] = []
    for file in find_files(path):
        try:
            loaded = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as exc:
            raise SpecError(f"{file}: not valid YAML: {exc}") from exc
        for index, raw in enumerate(loaded):
            where = str(file) if len(loaded) == 1 else f"{file} (document {index + 1})"
            default_name = file.name
            for suffix in (*TEST_SUFFIXES, ".yaml", ".yml"):
                default_name = default_name.removesuffix(suffix)
            if len(loaded) > 1:
                default_name = f"{default_name} #{index + 1}"
            tests.append(_parse(raw, file, where, default_name, default_definitions))
    return tests


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: must be a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(f"{where}: must be a list")
    return value


def _parse(
    raw: Any, file: Path, where: str, default_name: str, default_definitions: Path | None
) -> FlowTest:
    spec = _mapping(raw, where)
    known = {"name", "start", "definitions", "http", "events", "until", "expect"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r}; use {', '.join(sorted(known))}")
    name = spec.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}: name must be text")
    start = DEFAULT_START
    if "start" in spec:
        given = spec["start"]
        parsed = None
        if isinstance(given, datetime):  # YAML reads an unquoted time as one
            parsed = given.replace(tzinfo=UTC) if given.tzinfo is None else given.astimezone(UTC)
        elif isinstance(given, str):
            parsed = parse_timestamp(given)
        if parsed is None:
            raise SpecError(f"{where}: start: {given!r} is not an ISO-8601 time")
        start = parsed
    expect = _mapping(spec.get("expect", {}), f"{where}: expect")
    unknown = sorted(set(expect) - {"messages", "runs"})
    if unknown:
        raise SpecError(f"{where}: expect: unknown field {unknown[0]!r}; use messages, runs")
    return FlowTest(
        name=name,
        source=where,
        start=start,
        documents=_definitions(spec.get("definitions"), file, where, default_definitions),
        events=_events(spec.get("events", []), where),
        until=parse_offset(spec["until"], f"{where}: until") if "until" in spec else None,
        expected_messages=_expected(expect, "messages", MESSAGE_FIELDS, where),
        expected_runs=_expected(expect, "runs", RUN_FIELDS, where),
        http=_stubs(spec.get("http", []), where),
    )


def _definitions(
    value: Any, file: Path, where: str, default_definitions: Path | None
) -> list[Document] | None:
    """The test's own definitions: inline documents or a path relative to the file; else the
    `--definitions` path; None when there are neither."""
    try:
        if value is None:
            return read_documents(default_definitions) if default_definitions else None
        if isinstance(value, str):
            return read_documents(file.parent / value)
        documents: list[Document] = []
        for index, item in enumerate(_list(value, f"{where}: definitions")):
            at = f"{where}: definitions[{index}]"
            body = dict(_mapping(item, at))
            kind, object_id = body.pop("kind", None), body.pop("id", None)
            if kind not in KINDS:
                raise SpecError(f"{at}: kind must be automation, notification or audience")
            if not isinstance(object_id, str) or not object_id:
                raise SpecError(f"{at}: needs an id (a string)")
            documents.append(Document(kind, object_id, body, at))
        return documents
    except ApplyError as exc:
        raise SpecError(f"{where}: definitions: {exc.message}") from exc


def _events(value: Any, where: str) -> list[TimedEvent]:
    events = []
    for index, item in enumerate(_list(value, f"{where}: events")):
        at = f"{where}: events[{index}]"
        body = dict(_mapping(item, at))
        if "at" not in body:
            raise SpecError(f"{at}: needs at (an offset such as +0s or +3h)")
        offset = parse_offset(body.pop("at"), f"{at}.at")
        if body.get("type") not in EVENT_TYPES:
            raise SpecError(f"{at}.type: must be one of {', '.join(EVENT_TYPES)}")
        events.append(TimedEvent(offset, body))
    # In time order; events at the same time keep the file's order.
    return sorted(events, key=lambda event: event.at)


def _expected(
    expect: dict[str, Any], key: str, fields: tuple[str, ...], where: str
) -> list[dict[str, Any]] | None:
    if key not in expect:
        return None
    entries = []
    for index, item in enumerate(_list(expect[key] or [], f"{where}: expect.{key}")):
        at = f"{where}: expect.{key}[{index}]"
        entry = dict(_mapping(item, at))
        unknown = sorted(set(entry) - set(fields))
        if unknown:
            raise SpecError(f"{at}: unknown field {unknown[0]!r}; use {', '.join(fields)}")
        if "at" in entry:
            entry["at"] = parse_offset(entry["at"], f"{at}.at")
        for name, value in entry.items():
            if name != "at" and not isinstance(value, str | int | float | bool):
                raise SpecError(f"{at}.{name}: must be text")
        entries.append(
            {name: value if name == "at" else str(value) for name, value in entry.items()}
        )
    return entries


def _stubs(value: Any, where: str) -> list[HttpStub]:
    stubs = []
    for index, item in enumerate(_list(value, f"{where}: http")):
        at = f"{where}: http[{index}]"
        entry = _mapping(item, at)
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SpecError(f"{at}.url: needs an http(s) URL")
        status = entry.get("status", 200)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise SpecError(f"{at}.status: must be an HTTP status")
        method = str(entry.get("method", "GET")).upper()
        stubs.append(HttpStub(method, url, status, entry.get("json", {})))
    return stubs
