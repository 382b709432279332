"""Pipeline benchmark: a Segment track event to SMTP accept, through an automation.

In one run it starts, on free loopback ports and a temporary data dir:

- `bench/send/sink.py`, the aiosmtpd SMTP sink in a process of its own, which appends the
  accept time (`time.time()` when DATA is accepted), Subject and recipients of every message
  to a JSON-lines file;
- `tidings serve` with its defaults: SQLite database and SQLite job queue in the data dir,
  the in-process job consumer (2 threads).

Untimed, through the API: the SMTP provider (`security: none`, pointing at the sink), a
notification whose subject is `pipeline {{ data.seq }}`, an automation triggered by
`track/Bench Event` with one `send` step of that notification to the event's user, and
`--users` profiles (`bench-u<k>` with an email each). Then warm-up events until one reaches
the sink.

Timed, for each rate R of `--rates` in turn (ascending):

1. **floor**: R plain SMTP messages a second, for `--floor-seconds`, sent by this process
   straight to the same sink over one connection (smtplib), subject `floor <seq>`. Its latency
   (send call -> sink accept) is the floor: what the sink, loopback and this machine cost
   without Tidings.
2. **pipeline**: R x `--seconds` Segment track events (`event: "Bench Event"`,
   `properties.seq`: a sequence number unique in the run, users in turn) to
   `POST /inbound/segment`, **open-loop**: event i is due at start + i/R, whatever happened to
   the earlier ones. Each goes out in a task of its own on the most recently used idle
   keep-alive connection (at most `--connections`), through a minimal HTTP/1.1 client on
   asyncio, so the sender costs little CPU. Then it waits (at most `--drain-timeout` s) for
   every event's email. Each email is matched to its event by the sequence number in its
   subject.

Figures per rate:

- latency: sink accept time - the time the event's request was written to the socket ("event
  receipt"), p50/p90/p99/max over the events delivered; also from the scheduled time, which
  adds the sender's own lag;
- delivery: events answered 202 whose email was not in the sink by the drain timeout; after
  the last rate it waits (at most `--settle-timeout` s) for Tidings to finish, then counts
  **lost** (not in the sink although Tidings has finished with them: event processed, run
  ended, message sent), **duplicates** (an event's email accepted twice) and emails to the
  wrong address, which must all be 0 (the exit status says so), apart from the events still
  queued in Tidings when it stopped; refused: not answered 202, or answered `duplicate`;
- the sender: its own lag (handed to a connection - due: this process late), the wait for a
  free connection (all `--connections` waiting for Tidings' answers: ingest pushing back) and
  the time to the 202. **A lagging sender is reported, not hidden**: if its own p99 lag
  exceeds `--lag-bound-ms` (50) or it offered less than 98 % of the rate, the rate is marked
  `sender lagged`, neither sustained nor failed, and stepping stops;
- where the time goes, from the rows Tidings wrote (event, run, run step, message, delivery
  timestamps): request -> received, received -> event processed (group commit, first queue
  hop, processing), processed -> run step started (second hop), step started -> message
  routed (third hop, routing), routed -> SMTP accept (the attempt's commit and the SMTP
  exchange);
- CPU seconds of Tidings, the sink and this process, and of everything else on the machine
  ("others": the noise indicator).

**A rate is sustained** when every event was answered 202 and its email was in the sink by
the drain timeout, exactly once, the last email arrived within `--drain-bound` s (default 2)
of the last event sent, p99 is at most `--sustain-p99-ms` (default 1000 ms), no event waited
more than `--lag-bound-ms` (p99) for a free connection, and the sender kept its schedule.
Stepping stops at the first rate that is not sustained; the highest sustained rate is
reported. **Budget: p99 <= 250 ms at 200 events/s** (`--budget-rate`, `--budget-p99-ms`),
with the ratios to the floor; when stepping stops below the budget rate, that rate is still
measured once, after Tidings has worked off what the failed rate left.

    .venv/bin/python bench/pipeline/run.py [--rates 10,25,50,100,200,300,400,600]
        [--seconds 10] [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...]
        [--py-spy cpu|wall]

Each rate is bounded in events (R x `--seconds`) and time (sending stops at 2 x `--seconds`
+ 5 s; the drain at `--drain-timeout`). Writes bench/results/pipeline-<timestamp>.json.
`--commit REV` and `--src DIR` measure src/ of a commit or a patched copy, as in the send
benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    REPO,
    BenchError,
    Proc,
    api_key,
    clean_environment,
    filesystem_of,
    free_port,
    machine,
    machine_busy_seconds,
    ms,
    own_cpu_seconds,
    percentile,
    run_benchmark,
    running,
    source_tree,
    start_py_spy,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    wait_for,
    write_result,
)

RESULTS_DIR = REPO / "bench" / "results"
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


def user_id(seq: int, users: int) -> str:
    return f"bench-u{seq % users}"


def email_of(user: str) -> str:
    return f"{user}@bench.test"


# -- the sink's record -----------------------------------------------------------------------


@dataclass
class Accept:
    at: float
    kind: str  # "pipeline" or "floor"
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


# -- the floor: plain SMTP from this process ---------------------------------------------------


def floor_message(seq: int, rcpt: str) -> bytes:
    """About the size and shape of the email Tidings sends for the benchmark's notification."""
    return (
        f"From: Tidings bench <{FROM_EMAIL}>\r\nTo: {rcpt}\r\nSubject: floor {seq}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <floor-{seq}@bench.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        f"Hello, this is benchmark event {seq}.\r\n"
    ).encode()


def send_floor(smtp_port: int, seqs: range, rate: float, users: int) -> list[Sent]:
    """Open-loop SMTP sends on one connection, at the same rate as the pipeline step."""
    done = []
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="bench", timeout=30) as smtp:
        start_mono = time.monotonic() + 0.05
        start_wall = time.time() + 0.05
        for index, seq in enumerate(seqs):
            delay = start_mono + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rcpt = email_of(user_id(seq, users))
            now = time.time()
            sent = Sent(seq, start_wall + index / rate, dispatched=now, written=now)
            smtp.sendmail(FROM_EMAIL, [rcpt], floor_message(seq, rcpt))
            sent.answered = time.time()
            sent.status = 250
            done.append(sent)
    return done


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


# -- one rate ------------------------------------------------------------------------------------


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
    span = (last_written - first_written) * len(sent) / max(1, len(sent) - 1)
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
    rate: float
    floor: Outcome
    pipeline: Outcome
    verdict: str  # "sustained", "not sustained" or "sender lagged"
    reasons: list[str]
    hops_ms: dict[str, dict[str, float | None]]
    ratios: dict[str, float | None]
    cpu_seconds: dict[str, float]
    other_processes_cpu_seconds: float | None
    wall_seconds: float
    drain_seconds: float
    pending_after: dict[str, int] = field(default_factory=dict)
    pending_before: dict[str, int] = field(default_factory=dict)


def judge(pipeline: Outcome, args: argparse.Namespace) -> tuple[str, list[str]]:
    """Sustained, not sustained (with the reasons), or sender lagged (inconclusive)."""
    reasons = []
    if pipeline.sent < pipeline.events:
        reasons.append(f"only {pipeline.sent} of {pipeline.events} events sent within the bound")
    if pipeline.refused:
        reasons.append(f"{pipeline.refused} events not answered 202 (or answered duplicate)")
    if pipeline.undelivered_at_drain:
        reasons.append(
            f"{pipeline.undelivered_at_drain} events not in the sink {args.drain_timeout:.0f} s "
            "after the last one was sent"
        )
    if pipeline.duplicates:
        reasons.append(f"{pipeline.duplicates} duplicate emails")
    if pipeline.wrong_recipient:
        reasons.append(f"{pipeline.wrong_recipient} emails to the wrong recipient")
    late = pipeline.last_accept_after_last_send_s
    if late is not None and late > args.drain_bound:
        reasons.append(
            f"the last email came {late:.2f} s after the last event (> {args.drain_bound} s)"
        )
    p99 = pipeline.latency_ms.p99
    if p99 is None or p99 > args.sustain_p99_ms:
        reasons.append(f"p99 {shown(p99)} > {args.sustain_p99_ms:.0f} ms")
    waited = pipeline.connection_wait_ms.p99
    if waited is not None and waited > args.lag_bound_ms:
        reasons.append(
            f"ingest pushed back: events waited for a free connection (p99 {waited} ms, "
            f"{args.connections} connections)"
        )
    lag = pipeline.sender_lag_ms.p99
    slow = pipeline.offered_rate < 0.98 * pipeline.rate
    if (lag is not None and lag > args.lag_bound_ms) or slow:
        return "sender lagged", [
            f"the sender's own p99 lag was {shown(lag)} (bound {args.lag_bound_ms:.0f} ms) and "
            f"it offered {pipeline.offered_rate}/s: this process did not keep its schedule",
            *reasons,
        ]
    return ("not sustained", reasons) if reasons else ("sustained", [])


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 1) if a is not None and b else None


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


def settle(database: Path, record: SinkRecord, procs: list[Proc], timeout: float) -> bool:
    """Wait until Tidings has nothing left to do and the sink has stopped receiving."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in procs:
            proc.check_alive()
        if not any(pending(database).values()):
            time.sleep(1.0)  # A duplicate in flight would arrive now.
            record.poll()
            return True
        record.poll()
        time.sleep(0.25)
    record.poll()
    return False


def run_rate(
    rate: float,
    first_seq: int,
    args: argparse.Namespace,
    record: SinkRecord,
    procs: list[Proc],
    server: Proc,
    sink: Proc,
    key: str,
    run_tag: str,
    database: Path,
) -> tuple[Step, range, list[Sent]]:
    floor_count = max(1, round(rate * args.floor_seconds))
    floor_seqs = range(first_seq, first_seq + floor_count)
    floor_sent = send_floor(sink.port, floor_seqs, rate, args.users)
    wait_for(
        "the floor's messages in the sink",
        lambda: record.poll() >= 0 and len(record.of("floor", floor_seqs)) >= floor_count,
        procs,
        30,
    )
    floor = outcome(rate, floor_seqs, floor_sent, record.of("floor", floor_seqs), args.users, 250)

    count = max(1, round(rate * args.seconds))
    seqs = range(floor_seqs.stop, floor_seqs.stop + count)
    cpu_before = {proc.name: proc.cpu_seconds() for proc in procs}
    cpu_before["runner"] = own_cpu_seconds()
    busy_before = machine_busy_seconds()
    started = time.time()
    sent = send_events(
        "127.0.0.1",
        server.port,
        key,
        run_tag,
        seqs,
        rate,
        args.users,
        args.connections,
        2 * args.seconds + 5,
    )
    sending_done = time.time()
    expected = {s.seq for s in sent if s.status == 202}
    drain_deadline = sending_done + args.drain_timeout
    while time.time() < drain_deadline:
        record.poll()
        if {a.seq for a in record.of("pipeline", seqs)} >= expected:
            break
        for proc in procs:
            proc.check_alive()
        time.sleep(0.05)
    drain_seconds = time.time() - sending_done
    cpu_after = {proc.name: proc.cpu_seconds() for proc in procs}
    cpu_after["runner"] = own_cpu_seconds()
    busy_after = machine_busy_seconds()
    time.sleep(0.5)  # A late duplicate would show up now.
    record.poll()
    accepts = record.of("pipeline", seqs)
    pipeline = outcome(rate, seqs, sent, accepts, args.users, 202)
    verdict, reasons = judge(pipeline, args)

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
    hops = breakdown({s.seq: s for s in sent}, first_accept, stage_times(database, run_tag, seqs))
    step = Step(
        rate=rate,
        floor=floor,
        pipeline=pipeline,
        verdict=verdict,
        reasons=reasons,
        hops_ms=hops,
        ratios={
            "p50": ratio(pipeline.latency_ms.p50, floor.latency_ms.p50),
            "p99": ratio(pipeline.latency_ms.p99, floor.latency_ms.p99),
        },
        cpu_seconds=cpu,
        other_processes_cpu_seconds=others,
        wall_seconds=round(time.time() - started, 2),
        drain_seconds=round(drain_seconds, 2),
        pending_after=pending(database),
    )
    return step, seqs, sent


# -- set-up ------------------------------------------------------------------------------------


def expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def set_up(base_url: str, key: str, smtp_port: int, users: int) -> None:
    """Provider, notification, automation and profiles, through the API."""
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as api:
        expect(
            api.put(
                "/providers/smtp",
                json={
                    "config": {
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "security": "none",
                        "from_email": FROM_EMAIL,
                        "from_name": "Tidings bench",
                    }
                },
            ),
            200,
            201,
        )
        expect(api.put(f"/notifications/{NOTIFICATION_ID}", json=NOTIFICATION), 200, 201)
        expect(api.put(f"/automations/{AUTOMATION_ID}", json=AUTOMATION), 200, 201)
        for n in range(users):
            user = user_id(n, users)
            expect(
                api.post(
                    f"/profiles/{user}",
                    json={"profile": {"email": email_of(user), "name": f"User {n}"}},
                ),
                200,
                201,
            )


def warm_up(
    server: Proc, key: str, run_tag: str, record: SinkRecord, procs: list[Proc], users: int
) -> None:
    """A few events end to end (negative sequence numbers, left out of the figures)."""
    seqs = range(-WARMUP_EVENTS, 0)
    sent = send_events("127.0.0.1", server.port, key, run_tag, seqs, 20.0, users, 4, 30.0)
    bad = [s for s in sent if s.status != 202]
    if bad:
        raise BenchError(f"warm-up events refused: {bad[:3]}")
    wait_for(
        "the warm-up emails in the sink",
        lambda: record.poll() >= 0 and len(record.of("pipeline", seqs)) >= len(seqs),
        procs,
        60,
    )
    if record.unparsed:
        raise BenchError(f"unexpected subjects in the sink: {record.unparsed[:3]}")


# -- reporting ---------------------------------------------------------------------------------


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def print_step(step: Step) -> None:
    p, f = step.pipeline, step.floor
    print(
        f"\n  {step.rate:.0f} events/s: {step.verdict.upper()}\n"
        f"    pipeline  p50 {shown(p.latency_ms.p50)}, p99 {shown(p.latency_ms.p99)}, max "
        f"{shown(p.latency_ms.max)} ('-': beyond the drain timeout); {p.delivered}/{p.events} "
        f"delivered, {p.delivered_per_s}/s; last email +{p.last_accept_after_last_send_s} s "
        "after the last event\n"
        f"    floor     p50 {shown(f.latency_ms.p50)}, p99 {shown(f.latency_ms.p99)} "
        f"(pipeline / floor: p50 {step.ratios['p50']}x, p99 {step.ratios['p99']}x)\n"
        f"    sender    offered {p.offered_rate}/s, own lag p99 {shown(p.sender_lag_ms.p99)}, "
        f"connection wait p99 {shown(p.connection_wait_ms.p99)}, 202 in p50 "
        f"{shown(p.answer_ms.p50)} / p99 {shown(p.answer_ms.p99)}; refused {p.refused}"
    )
    for reason in step.reasons:
        print(f"    - {reason}")
    for name, figures in step.hops_ms.items():
        print(f"    {name:<32} p50 {shown(figures['p50']):>11}   p99 {shown(figures['p99']):>11}")
    print(
        f"    CPU s {json.dumps(step.cpu_seconds)}; other processes "
        f"{step.other_processes_cpu_seconds} s in {step.wall_seconds} s ({os.cpu_count()} CPUs)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Segment track -> automation send step -> SMTP accept, open-loop "
        "at fixed rates, against a live `tidings serve`."
    )
    parser.add_argument(
        "--rates",
        default="10,25,50,100,200,300,400,600",
        help="events/s to step through, ascending; stops at the first not sustained (the "
        "budget rate is then still measured once)",
    )
    parser.add_argument("--all-rates", action="store_true", help="do not stop at a failed rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of events per rate")
    parser.add_argument(
        "--floor-seconds", type=float, default=3.0, help="seconds of plain SMTP sends per rate"
    )
    parser.add_argument("--users", type=int, default=200, help="profiles the events rotate over")
    parser.add_argument(
        "--connections", type=int, default=64, help="HTTP connections of the event sender"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=15.0,
        help="max seconds to wait for the emails after the last event",
    )
    parser.add_argument(
        "--drain-bound",
        type=float,
        default=2.0,
        help="sustained: the last email within this many seconds of the last event",
    )
    parser.add_argument(
        "--sustain-p99-ms", type=float, default=1000.0, help="sustained: p99 at most this"
    )
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
        help="after the last rate, max seconds to wait for Tidings to finish, before counting "
        "losses and duplicates",
    )
    parser.add_argument(
        "--budget-rate", type=float, default=200.0, help="events/s of the budget; 0: none"
    )
    parser.add_argument("--budget-p99-ms", type=float, default=250.0)
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TIDINGS_* setting for tidings serve (TIDINGS_* variables of the calling shell "
        "are not passed on)",
    )
    parser.add_argument("--commit", default=None, metavar="REV", help="measure src/ of REV")
    parser.add_argument("--src", type=Path, default=None, metavar="DIR", help="measure DIR")
    parser.add_argument(
        "--py-spy",
        choices=["cpu", "wall"],
        default=None,
        help="profile tidings serve with py-spy over the timed rates (raw format, into "
        "bench/results/; summarise with bench/send/pyspy_summary.py)",
    )
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.commit and args.src:
        parser.error("give --commit or --src, not both")
    try:
        args.rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers, e.g. 50,100,200")
    if not args.rates or min(args.rates) <= 0 or args.rates != sorted(args.rates):
        parser.error("--rates: positive numbers, ascending")
    if args.users < 1 or args.connections < 1 or args.seconds <= 0 or args.floor_seconds <= 0:
        parser.error("--users, --connections, --seconds and --floor-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    if not tidings:
        print("`tidings` is not installed in this environment: pip install -e .", file=sys.stderr)
        return 2
    stop_on_signals()

    env = clean_environment()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    run_tag = f"pipe{started:%H%M%S}"
    steps: list[Step] = []
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="tidings-pipeline-", dir=args.data_root))
        if args.keep_data:
            print(f"data dir kept at {work_dir}")
        else:
            stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        data_dir = work_dir / "data"
        database = data_dir / "tidings.db"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(env, data_dir, source, args.tidings_env)

        sink = start_sink(stack, work_dir, env)
        port = free_port()
        print(f"sink on :{sink.port}; starting tidings serve (defaults) on :{port}")
        server = stack.enter_context(
            running(
                "serve",
                [
                    tidings,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                ],
                work_dir / "serve.log",
                tidings_env,
            )
        )
        server.port = port
        procs = [server, sink]
        base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
            return False

        wait_for("tidings serve to answer /health", healthy, procs, 60)

        def key_or_none() -> str | None:
            with contextlib.suppress(subprocess.CalledProcessError):
                return api_key(tidings, data_dir, tidings_env)
            return None

        key: str = wait_for("an API key", key_or_none, procs, 30)
        set_up(base_url, key, sink.port, args.users)
        record = SinkRecord(work_dir / "sink.jsonl")
        warm_up(server, key, run_tag, record, procs, args.users)
        time.sleep(1.0)
        profiles: dict[str, Path] = {}
        if args.py_spy:
            profiles = start_py_spy(stack, [server], work_dir, env, args.py_spy, RESULTS_DIR)
        print(
            f"set up; {args.seconds:.0f} s of events per rate on {args.connections} connections, "
            f"{args.users} users; floor {args.floor_seconds:.0f} s per rate"
        )

        next_seq = 0
        series: list[tuple[range, list[Sent]]] = []
        rates = list(args.rates)
        while rates:
            rate = rates.pop(0)
            backlog = pending(database)
            if any(backlog.values()):
                # What a failed rate left behind would be counted against this one.
                settle(database, record, procs, args.settle_timeout)
                backlog = pending(database)
            step, seqs, sent = run_rate(
                rate, next_seq, args, record, procs, server, sink, key, run_tag, database
            )
            step.pending_before = backlog
            next_seq = seqs.stop
            steps.append(step)
            series.append((seqs, sent))
            print_step(step)
            if step.verdict != "sustained" and not args.all_rates:
                measured = {step.rate for step in steps}
                rates = [args.budget_rate] if 0 < args.budget_rate not in measured else []
                if rates:
                    print("\n  stepping stops; the budget rate is measured once more:")
            time.sleep(1.0)
        settled = settle(database, record, procs, args.settle_timeout)
        for step, (seqs, sent) in zip(steps, series, strict=True):
            final = outcome(step.rate, seqs, sent, record.of("pipeline", seqs), args.users, 202)
            delivered = {accept.seq for accept in record.of("pipeline", seqs)}
            missing = [s.seq for s in sent if s.status == 202 and s.seq not in delivered]
            unfinished = unfinished_seqs(database, run_tag, missing)
            step.pipeline.lost = final.lost - len(unfinished)
            step.pipeline.unfinished = len(unfinished)
            step.pipeline.duplicates = final.duplicates
            step.pipeline.wrong_recipient = final.wrong_recipient
        print(
            f"\n  after the last rate: Tidings {'settled' if settled else 'NOT settled'} "
            f"(waited at most {args.settle_timeout:.0f} s); "
            f"lost {sum(s.pipeline.lost for s in steps)}, "
            f"duplicates {sum(s.pipeline.duplicates for s in steps)}, "
            f"still queued {sum(s.pipeline.unfinished for s in steps)}"
        )
        data_filesystem = filesystem_of(data_dir.resolve())
        if profiles:
            stack.close()  # Stops py-spy (and everything else) so the profiles get written.
            for name, path in profiles.items():
                print(f"  py-spy profile of {name}: {path}")

    sustained = [step.rate for step in steps if step.verdict == "sustained"]
    budget_step = next((step for step in steps if step.rate == args.budget_rate), None)
    budget: dict[str, Any] = {"rate": args.budget_rate, "p99_ms": args.budget_p99_ms}
    if budget_step is None:
        budget["verdict"] = "not measured"
    else:
        p99 = budget_step.pipeline.latency_ms.p99
        budget["measured_p99_ms"] = p99
        budget["verdict"] = (
            "met"
            if budget_step.verdict == "sustained" and p99 is not None and p99 <= args.budget_p99_ms
            else "not met"
        )
    highest = max(sustained, default=None)
    print(f"\n  highest rate sustained: {highest if highest is not None else 'none'} events/s")
    if args.budget_rate > 0:
        print(
            f"  budget p99 <= {args.budget_p99_ms:.0f} ms at {args.budget_rate:.0f} events/s: "
            f"{budget['verdict'].upper()}"
            + (f" (p99 {shown(budget['measured_p99_ms'])})" if "measured_p99_ms" in budget else "")
        )
    integrity_ok = all(
        not (s.pipeline.lost or s.pipeline.duplicates or s.pipeline.wrong_recipient) for s in steps
    )
    result = {
        "benchmark": "pipeline",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        }
        | {
            "source": {k: v for k, v in source.items() if k != "path"},
            "server": "tidings serve, defaults (SQLite, in-process consumer)",
            "data_dir_filesystem": data_filesystem,
            "notification": NOTIFICATION,
            "automation": AUTOMATION,
        },
        "highest_sustained_rate": highest,
        "budget": budget,
        "steps": [asdict(step) for step in steps],
    }
    output = args.output or RESULTS_DIR / f"pipeline-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    if not integrity_ok:
        print("  verification FAILED: lost, duplicate or misaddressed emails (see above)")
    return 0 if integrity_ok else 1


if __name__ == "__main__":
    run_benchmark(main, "processes")
