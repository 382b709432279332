"""Pipeline benchmark: a Segment track event to SMTP accept, against a minimal floor.

In one run it starts, on free loopback ports and a temporary data dir:

- `bench/send/sink.py`, the aiosmtpd SMTP sink in a process of its own, which appends the
  accept time (`time.time()` when DATA is accepted), Subject and recipients of every message
  to a JSON-lines file;
- `tidings serve` with its defaults: SQLite database and SQLite job queue in the data dir,
  the in-process job consumer;
- the floor, `floor_app.py`: a minimal Starlette app that inserts each event into SQLite
  (WAL, Tidings' synchronous setting), and a thread of the same process that polls for new
  rows, renders one Liquid template and sends it with smtplib over one connection to the
  same sink.

Untimed, through Tidings' API: the SMTP provider (`security: none`, pointing at the sink), a
notification whose subject is `pipeline {{ data.seq }}`, an automation triggered by
`track/Bench Event` with one `send` step of that notification to the event's user, and
`--users` profiles (`bench-u<k>`, `User <k>`, `bench-u<k>@bench.test`; the floor holds the
same users in memory). Then warm-up events until they reach the sink through both.

Timed: each of the two finds its **highest sustained rate**, by the same stepping
(`Stepper`), in steps that alternate between them. At a rate R, R x `--seconds` Segment
track events (`event: "Bench Event"`, `properties.seq`: a sequence number unique in the run,
users in turn) go to `POST /inbound/segment`, **open-loop**: event i is due at start + i/R,
whatever happened to the earlier ones. Each goes out in a task of its own on the most
recently used idle keep-alive connection (at most `--connections`), through a minimal
HTTP/1.1 client on asyncio, so the sender costs little CPU. Then it waits (at most
`--drain-timeout` s) for every event's email; the subject's number matches it to its event.

**A rate is sustained** when every event was answered 202 and its email was in the sink by
the drain timeout, exactly once, the last email arrived within `--drain-bound` s of the last
event sent, latency p99 (sink accept - request written) is at most `--p99-ms` (250), no event
waited more than `--lag-bound-ms` (p99) for a free connection, and the sender kept its
schedule (its own p99 lag within `--lag-bound-ms` and at least 98 % of the rate offered;
otherwise the rate is `sender lagged`: not sustained, and a result it bounds is reported as
inconclusive). The stepping goes up `--rates` until the first rate not sustained, then
bisects `--refine` times between the highest sustained rate and the lowest that was not.

**Budget: Tidings' highest sustained rate >= 0.4 x the floor's.** After the last step it
waits (at most `--settle-timeout` s) for both to finish, then counts **lost** emails (not in
the sink although the event was answered 202 and its pipeline has finished), duplicates and
emails to the wrong address, which must all be 0. For Tidings it also reports where the time
goes, from the rows it wrote (event, run, run step, message, delivery timestamps), and per
step CPU seconds of every process and of the rest of the machine ("others": the noise).

    .venv/bin/python bench/pipeline/run.py [--rates 100,200,400,800,1600] [--refine 3]
        [--seconds 6] [--quick] [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...]
        [--py-spy cpu|wall|gil]

Writes bench/results/pipeline-<timestamp>.json. Exits 1 if the verification fails or the
budget is missed (or the floor's rate was bounded by this process, not by the floor).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    RESULTS_DIR,
    BenchError,
    Proc,
    add_common_arguments,
    apply_defaults,
    clean_environment,
    filesystem_of,
    free_port,
    machine,
    machine_busy_seconds,
    make_work_dir,
    ms,
    own_cpu_seconds,
    percentile,
    print_verdict,
    quiesce,
    run_benchmark,
    running,
    source_tree,
    sqlite_synchronous,
    start_py_spy,
    start_serve,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    uvicorn_settings,
    verdict,
    wait_for,
    wait_for_api_key,
    wait_http,
    write_lock_shares,
    write_lock_use,
    write_result,
)

HERE = Path(__file__).resolve().parent
FLOOR_APP = HERE / "floor_app.py"
BUDGET = 0.4
EVENT_NAME = "Bench Event"
NOTIFICATION_ID = AUTOMATION_ID = "bench-pipeline"
NOTIFICATION = {
    "name": "Pipeline benchmark",
    "content": {
        "email": {
            "subject": "pipeline {{ data.seq }}",
            "text": "Hello {{ profile.name }}, this is benchmark event {{ data.seq }}.",
        }
    },
}
AUTOMATION = {
    "name": "Pipeline benchmark",
    "enabled": True,
    "triggers": [{"source": "segment", "event": f"track/{EVENT_NAME}"}],
    "steps": [{"action": "send", "template": NOTIFICATION_ID}],
}
FROM_EMAIL = "bench@tidings.test"
WARMUP_EVENTS = 20
TARGETS = ("floor", "tidings")


def user_id(seq: int, users: int) -> str:
    return f"bench-u{seq % users}"


def email_of(user: str) -> str:
    return f"{user}@bench.test"


# -- the sink's record -----------------------------------------------------------------------


@dataclass
class Accept:
    at: float
    kind: str  # "pipeline" (Tidings) or "floor"
    seq: int
    rcpt: list[str]


class SinkRecord:
    """Reads the sink's JSON lines as they are appended; subjects are `<kind> <seq>`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.accepted: dict[str, list[Accept]] = {"pipeline": [], "floor": []}
        self.unparsed: list[str] = []

    def poll(self) -> int:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        count = 0
        for raw in lines:
            if not raw.strip():
                continue
            record = json.loads(raw)
            kind, _, seq = str(record["subject"]).partition(" ")
            if kind not in self.accepted or not seq.lstrip("-").isdigit():
                self.unparsed.append(record["subject"])
                continue
            self.accepted[kind].append(
                Accept(float(record["t"]), kind, int(seq), list(record["rcpt"]))
            )
            count += 1
        return count

    def of(self, kind: str, seqs: range) -> list[Accept]:
        return [accept for accept in self.accepted[kind] if accept.seq in seqs]


# -- the open-loop event sender ---------------------------------------------------------------


@dataclass
class Sent:
    seq: int
    scheduled: float  # wall time the event was due
    dispatched: float = 0.0  # wall time the scheduler handed it to the connections
    written: float = 0.0  # wall time the request was written to the socket
    answered: float = 0.0
    status: int = 0
    duplicate: bool = False
    retried: bool = False
    error: str | None = None


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, just enough for `POST` and a JSON answer.

    httpx costs about a millisecond of CPU per request, which at a few hundred events a second
    would compete with Tidings for the same two cores; this costs a tenth of that.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = b""
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body


def segment_request(host: str, port: int, key: str, event: dict[str, Any]) -> bytes:
    """The request Segment's Courier destination makes, as bytes."""
    body = json.dumps(event, separators=(",", ":")).encode()
    head = (
        f"POST /inbound/segment HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nUser-Agent: SegmentCourier\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def track_event(run_tag: str, seq: int, users: int) -> dict[str, Any]:
    return {
        "messageId": f"{run_tag}-{seq}",
        "type": "track",
        "event": EVENT_NAME,
        "userId": user_id(seq, users),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "properties": {"seq": seq, "plan": "pro"},
    }


async def _send_events(
    host: str,
    port: int,
    key: str,
    run_tag: str,
    seqs: range,
    rate: float,
    users: int,
    connections: int,
    time_bound: float,
) -> list[Sent]:
    """Each event is handed to a task of its own at its due time; the task takes the most
    recently used idle connection (or opens one, up to `connections`)."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(connections)
    idle: list[HttpConnection] = []
    done: list[Sent] = []

    async def send(sent: Sent) -> None:
        request = segment_request(host, port, key, track_event(run_tag, sent.seq, users))
        async with slots:
            connection = idle.pop() if idle else HttpConnection(host, port)
            if connection.reader is not None and connection.reader.at_eof():
                connection.close()  # closed by the server while idle (keep-alive timeout)
            for attempt in range(2):
                try:
                    if connection.writer is None:
                        await connection.open()
                    sent.written = time.time()
                    status, body = await asyncio.wait_for(connection.post(request), 30)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    # Closed under our feet: once more on a new connection (ingest is
                    # idempotent by messageId; a replay would show as a duplicate answer).
                    connection.close()
                    sent.error = f"{type(exc).__name__}: {exc}"
                    sent.retried = attempt == 0
                    continue
                sent.answered = time.time()
                sent.status = status
                sent.error = None
                sent.duplicate = status == 202 and b'"duplicate":true' in body.replace(b" ", b"")
                break
            idle.append(connection)
        done.append(sent)

    tasks = []
    start_mono = loop.time() + 0.05
    start_wall = time.time() + 0.05
    deadline = start_mono + time_bound
    for index, seq in enumerate(seqs):
        due = start_mono + index / rate
        if due > deadline:
            break  # time bound: the rest is not sent (and counts against the rate)
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = Sent(seq, start_wall + index / rate, dispatched=time.time())
        tasks.append(asyncio.create_task(send(sent)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return sorted(done, key=lambda sent: sent.seq)


def send_events(*args: Any) -> list[Sent]:
    coroutine = _send_events(*args)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- where the time goes: the rows Tidings wrote -----------------------------------------------


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()


def stage_times(database: Path, run_tag: str, seqs: range) -> dict[int, dict[str, float | None]]:
    """Per sequence number: the timestamps of its event, run, run step, message, delivery."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT e.message_id, e.received_at, e.processed_at, r.created_at, s.started_at,"
            " s.finished_at, m.enqueued_at, m.routed_at, d.provider_started_at, m.sent_at"
            " FROM event e"
            " JOIN automation_run r ON r.event_pk = e.id"
            " LEFT JOIN automation_run_step s ON s.run_pk = r.id AND s.position = 0"
            " LEFT JOIN message m ON m.id = (SELECT min(id) FROM message"
            "   WHERE environment_id = r.environment_id AND request_id ="
            "   json_extract(s.output, '$.requestId'))"
            " LEFT JOIN message_delivery d ON d.message_pk = m.id"
            " WHERE e.message_id LIKE ?",
            (f"{run_tag}-%",),
        ).fetchall()
    finally:
        connection.close()
    names = (
        "received",
        "processed",
        "run_created",
        "step_started",
        "step_finished",
        "message_enqueued",
        "routed",
        "provider_started",
        "sent_recorded",
    )
    stages = {}
    for row in rows:
        seq = int(str(row[0]).rsplit("-", 1)[1])
        if seq in seqs:
            stages[seq] = {name: _epoch(value) for name, value in zip(names, row[1:], strict=True)}
    return stages


# The hops a delivered event goes through, as (name, from, to) over its timestamps.
HOPS = (
    ("request -> received", "written", "received"),
    ("received -> event processed", "received", "processed"),
    ("processed -> run step started", "processed", "step_started"),
    ("step started -> message routed", "step_started", "routed"),
    ("routed -> SMTP accept", "routed", "accepted"),
)


def breakdown(
    sent: dict[int, Sent], accepted: dict[int, float], stages: dict[int, dict[str, float | None]]
) -> dict[str, dict[str, float | None]]:
    """p50/p99 of each hop, over the events that went all the way."""
    values: dict[str, list[float]] = collections.defaultdict(list)
    for seq, times in stages.items():
        if seq not in accepted or seq not in sent:
            continue
        points = {**times, "written": sent[seq].written, "accepted": accepted[seq]}
        for name, start, end in HOPS:
            a, b = points.get(start), points.get(end)
            if a is not None and b is not None:
                values[name].append(b - a)
        if points.get("provider_started") and points.get("routed"):
            values["(routed -> attempt committed)"].append(
                points["provider_started"] - points["routed"]  # type: ignore[operator]
            )
    return {
        name: {
            "p50": ms(percentile(items, 0.5)),
            "p99": ms(percentile(items, 0.99)),
            "max": ms(max(items)),
        }
        for name, items in values.items()
    }


@dataclass
class Latency:
    """Percentiles in ms. With `missing` values (events not delivered by the drain timeout)
    counted as infinitely late, a percentile that falls among them is None: "beyond the
    drain timeout", never a flattering figure over the delivered ones only."""

    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float], missing: int = 0) -> Latency:
        ordered = sorted(values)
        return cls(
            _rank(ordered, missing, 0.5),
            _rank(ordered, missing, 0.9),
            _rank(ordered, missing, 0.99),
            ms(ordered[-1]) if ordered and not missing else None,
        )


def _rank(ordered: list[float], missing: int, q: float) -> float | None:
    """The q-quantile (linear interpolation) of `ordered` plus `missing` infinite values."""
    total = len(ordered) + missing
    if not total:
        return None
    position = (total - 1) * q
    low = int(position)
    high = min(low + 1, total - 1)
    if (high >= len(ordered) and position > low) or low >= len(ordered):
        return None
    upper = ordered[high] if high < len(ordered) else ordered[low]
    return ms(ordered[low] + (upper - ordered[low]) * (position - low))


@dataclass
class Outcome:
    """What one open-loop series (pipeline or floor) at one rate measured."""

    rate: float
    events: int
    sent: int
    offered_rate: float
    delivered: int
    undelivered_at_drain: int
    lost: int  # after the final settle: not in the sink although Tidings has finished
    unfinished: int  # after the final settle: still queued in Tidings when the run stopped
    duplicates: int
    refused: int
    retried: int
    wrong_recipient: int
    latency_ms: Latency
    latency_from_schedule_ms: Latency
    sender_lag_ms: Latency
    connection_wait_ms: Latency
    answer_ms: Latency
    last_accept_after_last_send_s: float | None
    delivered_per_s: float


def outcome(
    rate: float,
    seqs: range,
    sent: list[Sent],
    accepts: list[Accept],
    users: int,
    ok_status: int,
) -> Outcome:
    counts = collections.Counter(accept.seq for accept in accepts)
    first_accept: dict[int, Accept] = {}
    for accept in sorted(accepts, key=lambda accept: accept.at):
        first_accept.setdefault(accept.seq, accept)
    good = [s for s in sent if s.status == ok_status and not s.duplicate]
    latencies = [first_accept[s.seq].at - s.written for s in good if s.seq in first_accept]
    from_schedule = [first_accept[s.seq].at - s.scheduled for s in good if s.seq in first_accept]
    first_written = min((s.written for s in sent), default=0.0)
    last_written = max((s.written for s in sent), default=0.0)
    last_accept = max((a.at for a in first_accept.values()), default=None)
    # What the scheduler offered (handed to the connections), apart from the wait for a free
    # connection, which is the server pushing back, not the sender lagging.
    dispatched = [s.dispatched for s in sent]
    span = (max(dispatched, default=0.0) - min(dispatched, default=0.0)) * len(sent)
    span /= max(1, len(sent) - 1)
    return Outcome(
        rate=rate,
        events=len(seqs),
        sent=len(sent),
        offered_rate=round(len(sent) / span, 1) if span > 0 else 0.0,
        delivered=len(first_accept),
        undelivered_at_drain=sum(1 for s in good if s.seq not in first_accept),
        lost=sum(1 for s in good if s.seq not in first_accept),
        unfinished=0,
        duplicates=sum(count - 1 for count in counts.values() if count > 1),
        refused=len(sent) - len(good),
        retried=sum(1 for s in sent if s.retried),
        wrong_recipient=sum(
            1 for a in first_accept.values() if a.rcpt != [email_of(user_id(a.seq, users))]
        ),
        latency_ms=Latency.of(latencies, len(good) - len(latencies)),
        latency_from_schedule_ms=Latency.of(from_schedule, len(good) - len(from_schedule)),
        sender_lag_ms=Latency.of([s.dispatched - s.scheduled for s in sent]),
        connection_wait_ms=Latency.of([s.written - s.dispatched for s in sent]),
        answer_ms=Latency.of([s.answered - s.written for s in sent if s.answered]),
        last_accept_after_last_send_s=(
            round(last_accept - last_written, 3) if last_accept is not None else None
        ),
        delivered_per_s=(
            round(len(first_accept) / (last_accept - first_written), 1)
            if last_accept is not None and last_accept > first_written
            else 0.0
        ),
    )


@dataclass
class Step:
    target: str
    rate: float
    outcome: Outcome
    verdict: str  # "sustained", "not sustained" or "sender lagged"
    reasons: list[str]
    hops_ms: dict[str, dict[str, float | None]]
    cpu_seconds: dict[str, float]
    other_processes_cpu_seconds: float | None
    wall_seconds: float
    # Tidings on SQLite: by kind of thread, the share of the step it held the write lock and
    # waited for it, and its acquisitions per second (common.write_lock_shares).
    write_lock: dict[str, dict[str, float]]
    drain_seconds: float
    pending_after: dict[str, int] = field(default_factory=dict)
    pending_before: dict[str, int] = field(default_factory=dict)


def judge(result: Outcome, args: argparse.Namespace) -> tuple[str, list[str]]:
    """Sustained, not sustained (with the reasons), or sender lagged (this process did not
    keep the schedule)."""
    reasons = []
    if result.sent < result.events:
        reasons.append(f"only {result.sent} of {result.events} events sent within the bound")
    if result.refused:
        reasons.append(f"{result.refused} events not answered 202 (or answered duplicate)")
    if result.undelivered_at_drain:
        reasons.append(
            f"{result.undelivered_at_drain} events not in the sink {args.drain_timeout:.0f} s "
            "after the last one was sent"
        )
    if result.duplicates:
        reasons.append(f"{result.duplicates} duplicate emails")
    if result.wrong_recipient:
        reasons.append(f"{result.wrong_recipient} emails to the wrong recipient")
    late = result.last_accept_after_last_send_s
    if late is not None and late > args.drain_bound:
        reasons.append(
            f"the last email came {late:.2f} s after the last event (> {args.drain_bound} s)"
        )
    p99 = result.latency_ms.p99
    if p99 is None or p99 > args.p99_ms:
        reasons.append(f"p99 {shown(p99)} > {args.p99_ms:.0f} ms")
    waited = result.connection_wait_ms.p99
    if waited is not None and waited > args.lag_bound_ms:
        reasons.append(
            f"ingest pushed back: events waited for a free connection (p99 {waited} ms, "
            f"{args.connections} connections)"
        )
    lag = result.sender_lag_ms.p99
    slow = result.offered_rate < 0.98 * result.rate
    if (lag is not None and lag > args.lag_bound_ms) or slow:
        return "sender lagged", [
            f"the sender's own p99 lag was {shown(lag)} (bound {args.lag_bound_ms:.0f} ms) and "
            f"it offered {result.offered_rate}/s: this process did not keep its schedule",
            *reasons,
        ]
    return ("not sustained", reasons) if reasons else ("sustained", [])


# -- the stepping, one implementation for both ----------------------------------------------------


class Stepper:
    """The rates one pipeline is measured at: up `ladder` until the first rate that is not
    sustained, then `refine` bisections between the highest rate sustained and the lowest
    that was not."""

    def __init__(self, ladder: list[float], refine: int) -> None:
        self.ladder = list(ladder)
        self.refine = refine
        self.sustained: float | None = None
        self.failed: dict[float, str] = {}  # rate -> verdict

    def next_rate(self) -> float | None:
        if not self.failed:
            return self.ladder.pop(0) if self.ladder else None
        low, high = self.sustained or 0.0, min(self.failed)
        middle = float(round((low + high) / 2))
        if self.refine <= 0 or not low < middle < high:
            return None
        self.refine -= 1
        return middle

    def record(self, rate: float, verdict: str) -> None:
        if verdict == "sustained":
            self.sustained = max(self.sustained or 0.0, rate)
        else:
            self.failed[rate] = verdict

    def result(self) -> dict[str, Any]:
        """The highest rate sustained and what bounds it: the lowest rate not sustained, or
        the top of the ladder, or this process (the sender lagged): then it is a lower
        bound only."""
        lowest_failed = min(self.failed, default=None)
        bound = "top of the ladder" if lowest_failed is None else self.failed[lowest_failed]
        return {
            "highest_sustained": self.sustained,
            "lowest_not_sustained": lowest_failed,
            "bounded_by": bound,
            "exact": bound == "not sustained",
        }


# -- the two pipelines ---------------------------------------------------------------------------


Hops = dict[str, dict[str, float | None]]


@dataclass
class Target:
    """One of the two pipelines measured: where its events go, what its emails are called,
    and what it has left to do."""

    name: str
    kind: str  # the first word of its emails' subjects
    proc: Proc
    key: str
    run_tag: str  # the prefix of its events' messageIds
    pending: Callable[[], dict[str, int]]
    unfinished: Callable[[list[int]], set[int]]
    hops: Callable[[dict[int, Sent], dict[int, float], range], Hops]
    # So far, by kind of thread, its use of SQLite's write lock (None: not known).
    write_lock: Callable[[], dict[str, dict[str, float]] | None] = lambda: None


def tidings_target(server: Proc, key: str, run_tag: str, database: Path) -> Target:
    def hops(sent: dict[int, Sent], accepted: dict[int, float], seqs: range) -> Hops:
        try:
            return breakdown(sent, accepted, stage_times(database, run_tag, seqs))
        except sqlite3.Error as exc:  # A schema this benchmark does not know.
            return {f"(not available: {exc})": {}}

    return Target(
        "tidings",
        "pipeline",
        server,
        key,
        run_tag,
        lambda: pending(database),
        lambda seqs: unfinished_seqs(database, run_tag, seqs),
        hops,
        lambda: write_lock_use(server.port, key),
    )


def floor_target(floor: Proc, run_tag: str) -> Target:
    def floor_pending() -> dict[str, int]:
        status = httpx.get(f"http://127.0.0.1:{floor.port}/status", timeout=10).json()
        return {"events_not_sent": int(status["stored"]) - int(status["sent"])}

    def unfinished(seqs: list[int]) -> set[int]:
        return set(seqs) if any(floor_pending().values()) else set()

    return Target("floor", "floor", floor, "", run_tag, floor_pending, unfinished, lambda *_: {})


def unfinished_seqs(database: Path, run_tag: str, seqs: list[int]) -> set[int]:
    """Of these events, the ones Tidings has not finished: the event not processed yet, its
    run still active, or its message not yet sent. The others, if not in the sink, are lost."""
    if not seqs:
        return set()
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    unfinished = set()
    try:
        for seq in seqs:
            row = connection.execute(
                "SELECT e.status, r.status, m.status FROM event e"
                " LEFT JOIN automation_run r ON r.event_pk = e.id"
                " LEFT JOIN automation_run_step s ON s.run_pk = r.id AND s.position = 0"
                " LEFT JOIN message m ON m.environment_id = r.environment_id"
                "   AND m.request_id = json_extract(s.output, '$.requestId')"
                " WHERE e.message_id = ?",
                (f"{run_tag}-{seq}",),
            ).fetchone()
            if row is None:
                continue  # never stored: lost
            event_status, run_status, message_status = row
            if (
                event_status == "received"
                or run_status in ("PROCESSING", "WAITING")
                or message_status in ("ENQUEUED", "DELAYED", "ROUTED")
            ):
                unfinished.add(seq)
    finally:
        connection.close()
    return unfinished


def pending(database: Path) -> dict[str, int]:
    """What Tidings has not finished: events not processed, runs active, messages not SENT."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return {
            "events_received": connection.execute(
                "SELECT count(*) FROM event WHERE status = 'received'"
            ).fetchone()[0],
            "runs_active": connection.execute(
                "SELECT count(*) FROM automation_run WHERE status IN ('PROCESSING', 'WAITING')"
            ).fetchone()[0],
            "messages_not_sent": connection.execute(
                "SELECT count(*) FROM message WHERE status != 'SENT'"
            ).fetchone()[0],
        }
    finally:
        connection.close()


@dataclass
class Bench:
    args: argparse.Namespace
    record: SinkRecord
    procs: list[Proc]
    targets: dict[str, Target]
    next_seq: int = 0


def settle(bench: Bench, timeout: float) -> bool:
    """Wait until neither pipeline has anything left to do and the sink has stopped
    receiving."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in bench.procs:
            proc.check_alive()
        if not any(any(t.pending().values()) for t in bench.targets.values()):
            time.sleep(1.0)  # A duplicate in flight would arrive now.
            bench.record.poll()
            return True
        bench.record.poll()
        time.sleep(0.25)
    bench.record.poll()
    return False


def run_rate(bench: Bench, target: Target, rate: float) -> tuple[Step, range, list[Sent]]:
    args, record = bench.args, bench.record
    count = max(1, round(rate * args.seconds))
    seqs = range(bench.next_seq, bench.next_seq + count)
    bench.next_seq = seqs.stop
    cpu_before = {proc.name: proc.cpu_seconds() for proc in bench.procs}
    cpu_before["runner"] = own_cpu_seconds()
    busy_before = machine_busy_seconds()
    lock_before = target.write_lock()
    started = time.time()
    sent = send_events(
        "127.0.0.1",
        target.proc.port,
        target.key,
        target.run_tag,
        seqs,
        rate,
        args.users,
        args.connections,
        2 * args.seconds + 5,
    )
    sending_done = time.time()
    expected = {s.seq for s in sent if s.status == 202}
    while time.time() < sending_done + args.drain_timeout:
        record.poll()
        if {a.seq for a in record.of(target.kind, seqs)} >= expected:
            break
        for proc in bench.procs:
            proc.check_alive()
        time.sleep(0.05)
    drain_seconds = time.time() - sending_done
    cpu_after = {proc.name: proc.cpu_seconds() for proc in bench.procs}
    cpu_after["runner"] = own_cpu_seconds()
    busy_after = machine_busy_seconds()
    lock_after = target.write_lock()
    lock_seconds = time.time() - started
    time.sleep(0.5)  # A late duplicate would show up now.
    record.poll()
    accepts = record.of(target.kind, seqs)
    result = outcome(rate, seqs, sent, accepts, args.users, 202)
    verdict_, reasons = judge(result, args)
    cpu = {
        name: round(after - before, 2)
        for name, before in cpu_before.items()
        if before is not None and (after := cpu_after.get(name)) is not None
    }
    others = None
    if busy_before is not None and busy_after is not None:
        others = round(busy_after - busy_before - sum(cpu.values()), 1)
    first_accept: dict[int, float] = {}
    for accept in sorted(accepts, key=lambda accept: accept.at):
        first_accept.setdefault(accept.seq, accept.at)
    step = Step(
        target=target.name,
        rate=rate,
        outcome=result,
        verdict=verdict_,
        reasons=reasons,
        hops_ms=target.hops({s.seq: s for s in sent}, first_accept, seqs),
        cpu_seconds=cpu,
        other_processes_cpu_seconds=others,
        wall_seconds=round(time.time() - started, 2),
        write_lock=write_lock_shares(lock_before, lock_after, lock_seconds),
        drain_seconds=round(drain_seconds, 2),
        pending_after=target.pending(),
    )
    return step, seqs, sent


Series = list[tuple[Step, range, list[Sent]]]


def step_both(bench: Bench) -> tuple[Series, dict[str, dict[str, Any]]]:
    """Each pipeline's stepping, in steps that alternate between the two, each after what
    an earlier step left is done and the processes are idle."""
    steppers = {name: Stepper(bench.args.rates, bench.args.refine) for name in TARGETS}
    steps = []
    turn = 0
    while True:
        order = TARGETS if turn % 2 == 0 else TARGETS[::-1]
        turn += 1
        ran = False
        for name in order:
            rate = steppers[name].next_rate()
            if rate is None:
                continue
            ran = True
            target = bench.targets[name]
            backlog = target.pending()
            if any(any(t.pending().values()) for t in bench.targets.values()):
                settle(bench, bench.args.settle_timeout)
            quiesce(bench.procs, timeout=60)
            step, seqs, sent = run_rate(bench, target, rate)
            step.pending_before = backlog
            steppers[name].record(rate, step.verdict)
            steps.append((step, seqs, sent))
            print_step(step)
            time.sleep(1.0)
        if not ran:
            break
    return steps, {name: stepper.result() for name, stepper in steppers.items()}


def account(bench: Bench, steps: Series, users: int) -> None:
    """After the final settle: per step, lost emails (the pipeline finished, the email is
    not in the sink), those still unfinished, duplicates and misaddressed ones."""
    for step, seqs, sent in steps:
        target = bench.targets[step.target]
        accepts = bench.record.of(target.kind, seqs)
        final = outcome(step.rate, seqs, sent, accepts, users, 202)
        delivered = {accept.seq for accept in accepts}
        missing = [s.seq for s in sent if s.status == 202 and s.seq not in delivered]
        unfinished = target.unfinished(missing)
        step.outcome.lost = final.lost - len(unfinished)
        step.outcome.unfinished = len(unfinished)
        step.outcome.duplicates = final.duplicates
        step.outcome.wrong_recipient = final.wrong_recipient


# -- set-up ------------------------------------------------------------------------------------


def expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def set_up(base_url: str, key: str, smtp_port: int, users: int) -> None:
    """Provider, notification, automation and profiles, through Tidings' API."""
    provider = {"host": "127.0.0.1", "port": smtp_port, "security": "none"}
    provider |= {"from_email": FROM_EMAIL, "from_name": "Tidings bench"}
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as api:
        expect(api.put("/providers/smtp", json={"config": provider}), 200, 201)
        expect(api.put(f"/notifications/{NOTIFICATION_ID}", json=NOTIFICATION), 200, 201)
        expect(api.put(f"/automations/{AUTOMATION_ID}", json=AUTOMATION), 200, 201)
        for n in range(users):
            user = user_id(n, users)
            profile = {"profile": {"email": email_of(user), "name": f"User {n}"}}
            expect(api.post(f"/profiles/{user}", json=profile), 200, 201)


def warm_up(bench: Bench, target: Target) -> None:
    """A few events end to end (negative sequence numbers, left out of the figures)."""
    seqs = range(-WARMUP_EVENTS, 0)
    port, users = target.proc.port, bench.args.users
    sent = send_events("127.0.0.1", port, target.key, target.run_tag, seqs, 20.0, users, 4, 30.0)
    bad = [s for s in sent if s.status != 202]
    if bad:
        raise BenchError(f"{target.name}: warm-up events refused: {bad[:3]}")
    wait_for(
        f"the {target.name} warm-up emails in the sink",
        lambda: bench.record.poll() >= 0 and len(bench.record.of(target.kind, seqs)) >= len(seqs),
        bench.procs,
        60,
    )
    if bench.record.unparsed:
        raise BenchError(f"unexpected subjects in the sink: {bench.record.unparsed[:3]}")


def start_processes(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    tidings: str,
    work_dir: Path,
    tidings_env: dict[str, str],
) -> tuple[Proc, Proc, Proc]:
    """The sink, `tidings serve` and the floor app, answering."""
    env = clean_environment()
    sink = start_sink(stack, work_dir, env)
    synchronous = sqlite_synchronous(tidings_env)
    port, floor_port = free_port(), free_port()
    print(
        f"sink on :{sink.port}; tidings serve (defaults) on :{port}; the floor on :{floor_port} "
        f"(synchronous={synchronous})"
    )
    server = start_serve(stack, tidings, "serve", work_dir / "serve.log", tidings_env, port)
    floor_argv = [sys.executable, str(FLOOR_APP), "--port", str(floor_port)]
    floor_argv += ["--database", str(work_dir / "floor.db"), "--synchronous", synchronous]
    floor_argv += ["--smtp-port", str(sink.port), "--users", str(args.users)]
    floor = stack.enter_context(running("floor", floor_argv, work_dir / "floor.log", env))
    floor.port = floor_port

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        return False

    wait_for("tidings serve to answer /health", healthy, [server, sink], 60)
    wait_http(floor, "/status")
    return sink, server, floor


# -- reporting ---------------------------------------------------------------------------------


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def print_step(step: Step) -> None:
    o = step.outcome
    print(
        f"\n  {step.target} at {step.rate:.0f} events/s: {step.verdict.upper()}\n"
        f"    latency p50 {shown(o.latency_ms.p50)}, p99 {shown(o.latency_ms.p99)}, max "
        f"{shown(o.latency_ms.max)} ('-': beyond the drain timeout); {o.delivered}/{o.events} "
        f"delivered, {o.delivered_per_s}/s; last email +{o.last_accept_after_last_send_s} s "
        "after the last event\n"
        f"    sender    offered {o.offered_rate}/s, own lag p99 {shown(o.sender_lag_ms.p99)}, "
        f"connection wait p99 {shown(o.connection_wait_ms.p99)}, 202 in p50 "
        f"{shown(o.answer_ms.p50)} / p99 {shown(o.answer_ms.p99)}; refused {o.refused}"
    )
    for reason in step.reasons:
        print(f"    - {reason}")
    for name, figures in step.hops_ms.items():
        p50, p99 = figures.get("p50"), figures.get("p99")
        print(f"    {name:<32} p50 {shown(p50):>11}   p99 {shown(p99):>11}")
    print(
        f"    CPU s {json.dumps(step.cpu_seconds)}; other processes "
        f"{step.other_processes_cpu_seconds} s in {step.wall_seconds} s ({os.cpu_count()} CPUs)"
    )
    if step.write_lock:
        held = sum(use["held"] for use in step.write_lock.values())
        by_thread = ", ".join(
            f"{thread} {use['held']:.0%} ({use['per_s']:.0f}/s, waits {use['wait']:.0%})"
            for thread, use in sorted(step.write_lock.items(), key=lambda item: -item[1]["held"])
        )
        print(f"    write lock held {held:.0%} of the step: {by_thread}")


def budget_figures(stepping: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The verdict on the highest sustained rates; a ratio that rests on a rate this process
    could only bound from below decides nothing."""
    floor, tidings = stepping["floor"], stepping["tidings"]
    figures = verdict(
        "events/s sustained", floor["highest_sustained"], tidings["highest_sustained"], BUDGET
    )
    if figures["met"] and not floor["exact"]:
        figures["met"] = False
        figures["inconclusive"] = f"the floor's rate is a lower bound ({floor['bounded_by']})"
    elif not figures["met"] and not tidings["exact"] and tidings["highest_sustained"]:
        figures["inconclusive"] = f"Tidings' rate is a lower bound ({tidings['bounded_by']})"
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Segment track -> automation send step -> SMTP accept, open-loop "
        "at stepped rates, against a minimal floor pipeline."
    )
    parser.add_argument(
        "--rates",
        default="100,200,400,800,1600",
        help="events/s to step up through, ascending, until the first not sustained",
    )
    parser.add_argument(
        "--refine", type=int, help="bisections after the first rate not sustained (3; quick 1)"
    )
    parser.add_argument("--seconds", type=float, help="seconds of events a step (6; quick 3)")
    parser.add_argument("--users", type=int, default=200, help="profiles the events rotate over")
    parser.add_argument(
        "--connections", type=int, default=64, help="HTTP connections of the event sender"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="max seconds to wait for the emails after the last event",
    )
    parser.add_argument(
        "--drain-bound",
        type=float,
        default=2.0,
        help="sustained: the last email within this many seconds of the last event",
    )
    parser.add_argument("--p99-ms", type=float, default=250.0, help="sustained: p99 at most this")
    parser.add_argument(
        "--lag-bound-ms",
        type=float,
        default=50.0,
        help="the sender lagged if its own p99 lag (handed to a connection - due) exceeds "
        "this, or it offered less than 98%% of the rate",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=30.0,
        help="max seconds to wait for both pipelines to finish what a step left, and after "
        "the last step, before counting losses and duplicates",
    )
    parser.add_argument(
        "--py-spy",
        choices=["cpu", "wall", "gil"],
        default=None,
        help="profile tidings serve with py-spy over the steps (raw format, for flamegraph.pl "
        "or speedscope, into bench/results/)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(args, {"refine": 3, "seconds": 6.0}, {"refine": 1, "seconds": 3.0})
    try:
        args.rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers, e.g. 50,100,200")
    if not args.rates or min(args.rates) <= 0 or args.rates != sorted(args.rates):
        parser.error("--rates: positive numbers, ascending")
    if args.users < 1 or args.connections < 1 or args.seconds <= 0 or args.refine < 0:
        parser.error("--users, --connections and --seconds must be positive, --refine not < 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-pipeline-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(clean_environment(), data_dir, source, args.tidings_env)
        sink, server, floor = start_processes(stack, args, tidings, work_dir, tidings_env)

        key = wait_for_api_key(tidings, data_dir, tidings_env, [server])
        set_up(f"http://127.0.0.1:{server.port}", key, sink.port, args.users)
        targets = {
            "floor": floor_target(floor, f"floor{started:%H%M%S}"),
            "tidings": tidings_target(
                server, key, f"pipe{started:%H%M%S}", data_dir / "tidings.db"
            ),
        }
        bench = Bench(args, SinkRecord(work_dir / "sink.jsonl"), [server, floor, sink], targets)
        for target in targets.values():
            warm_up(bench, target)
        time.sleep(1.0)
        profiles: dict[str, Path] = {}
        if args.py_spy:
            profiles = start_py_spy(
                stack, [server], work_dir, clean_environment(), args.py_spy, RESULTS_DIR
            )
        print(
            f"set up; {args.seconds:g} s of events a step on {args.connections} connections, "
            f"{args.users} users; rates {args.rates}, then {args.refine} bisections"
        )
        steps, stepping = step_both(bench)
        settled = settle(bench, args.settle_timeout)
        account(bench, steps, args.users)
        data_filesystem = filesystem_of(data_dir.resolve())
        if profiles:
            stack.close()  # Stops py-spy (and everything else) so the profiles get written.

    figures = budget_figures(stepping)
    integrity_ok = all(
        not (s.outcome.lost or s.outcome.duplicates or s.outcome.wrong_recipient)
        for s, _, _ in steps
    )
    print(
        f"\n  after the last step: {'settled' if settled else 'NOT settled'} (waited at most "
        f"{args.settle_timeout:.0f} s); lost {sum(s.outcome.lost for s, _, _ in steps)}, "
        f"duplicates {sum(s.outcome.duplicates for s, _, _ in steps)}, "
        f"still unfinished {sum(s.outcome.unfinished for s, _, _ in steps)}"
    )
    for name in TARGETS:
        result = stepping[name]
        print(
            f"  {name}: highest sustained {result['highest_sustained']} events/s; next rate "
            f"{result['lowest_not_sustained']} ({result['bounded_by']})"
        )
    print_verdict("pipeline", figures)
    if "inconclusive" in figures:
        print(f"  inconclusive: {figures['inconclusive']}")
    if not integrity_ok:
        print("  verification FAILED: lost, duplicate or misaddressed emails (see above)")
    for name, path in profiles.items():
        print(f"  py-spy profile of {name}: {path}")
    settings = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }
    result = {
        "benchmark": "pipeline",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "source": {k: v for k, v in source.items() if k != "path"},
        "budget": figures,
        "settings": settings
        | {
            "tidings": "tidings serve, defaults (SQLite, in-process consumer)",
            "uvicorn": uvicorn_settings(),
            "data_dir_filesystem": data_filesystem,
            "notification": NOTIFICATION,
            "automation": AUTOMATION,
        },
        "stepping": stepping,
        "verification": {"ok": integrity_ok, "settled": settled},
        "steps": [asdict(step) for step, _, _ in steps],
    }
    output = args.output or RESULTS_DIR / f"pipeline-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if integrity_ok and figures["met"] else 1


if __name__ == "__main__":
    run_benchmark(main, "processes")
