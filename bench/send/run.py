"""Send benchmark: `POST /send` to SMTP accept, against one thread sending with smtplib.

In one run it starts, on free loopback ports and a temporary data dir (SQLite database and
SQLite job queue, the embedded defaults):

- `sink.py`, an aiosmtpd SMTP sink in a process of its own, which appends the accept time
  (`time.time()`), Subject and recipients of every message it accepts to a JSON-lines file;
- `tidings serve` with its defaults (the API and the in-process consumer), or with
  `--worker` the API alone (`TIDINGS_CONSUMER_WORKERS=0`) and one `tidings worker`.

Before timing starts it configures the SMTP provider, a template (subject
`bench {{ data.round }} {{ profile.n }} {{ data.t }}`, a one-line text and HTML body) and N
profiles (`bench-<n>`, `bench-<n>@bench.test`), and sends one warm-up message end to end.
Then, in rounds alternating between the two (floor first in odd rounds):

- **Tidings**: the N messages posted as fast as the API takes them, 100 recipients per
  request, with `data.t` = `time.time()` when the request is built; it waits (at most
  `--timeout` s) until the sink holds all N.
- **the floor**: one thread of this process sends the same N messages (same sender,
  recipients, subject, text and HTML, in the shape Tidings' SMTP provider writes) with
  smtplib over one connection to the same sink.

Each round's rate is messages accepted by the sink / (last SMTP accept - first request, or
first send for the floor). It reports the median rate of each, their ratio (budget: Tidings /
floor >= 0.5), Tidings' enqueue-to-accept latency, duplicates, missing recipients, the final
message statuses, CPU seconds of each process, and the data dir's fsync latency before and
after the rounds (each message's outcome is one fsync'd commit under SQLite's single write
lock, so that bounds Tidings' rate).

    .venv/bin/python bench/send/run.py [--messages 3000] [--rounds 3] [--worker]
        [--threads N] [--quick] [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...]
        [--py-spy cpu|wall|gil]

`--py-spy cpu|wall|gil` also records py-spy profiles (raw format, for flamegraph.pl or
speedscope) of the Tidings processes during the rounds into bench/results/ (`pip install
py-spy` first; it is not a project dependency). Writes bench/results/send-<timestamp>.json.
Exits 1 if the verification fails or the budget is missed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import smtplib
import sqlite3
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    api_key,
    apply_defaults,
    clean_environment,
    email_bytes,
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
    start_py_spy,
    start_serve,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    verdict,
    wait_for,
    write_result,
)

BUDGET = 0.5
BATCH = 100
FROM = ("Tidings bench", "bench@tidings.test")
TEMPLATE_ID = "bench-send"
SUBJECT = "bench {{ data.round }} {{ profile.n }} {{ data.t }}"
TEXT = "Hello {{ profile.n }}, this is benchmark message {{ data.t }}."
HTML = "<p>Hello {{ profile.n }}, this is benchmark message {{ data.t }}.</p>"
TEMPLATE = {
    "name": "Send benchmark",
    "content": {"email": {"subject": SUBJECT, "text": TEXT, "html": HTML}},
}
WARMUP_USER = "bench-warmup"
PENDING_STATUSES = ("ENQUEUED", "DELAYED", "ROUTED")
TARGETS = ("floor", "tidings")
KINDS = {"floor": "floor", "tidings": "bench"}  # the subject's first word

# Set on Ctrl-C / SIGTERM: the client threads stop after their current request.
STOP = threading.Event()


# -- the sink's record -------------------------------------------------------------------------


@dataclass
class Accepted:
    at: float
    kind: str
    round: int
    n: str
    t: float | None
    rcpt: list[str]


class SinkRecord:
    """Reads the sink's JSON lines as they are appended; subjects are `<kind> <round> <n> <t>`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.messages: list[Accepted] = []
        self.unparsed: list[str] = []

    def poll(self) -> list[Accepted]:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        new = []
        for raw in lines:
            if not raw.strip():
                continue
            record = json.loads(raw)
            parts = str(record["subject"]).split()
            if len(parts) != 4 or parts[0] not in KINDS.values() or not parts[1].isdigit():
                self.unparsed.append(record["subject"])
                continue
            try:
                t: float | None = float(parts[3])
            except ValueError:
                t = None
            new.append(
                Accepted(float(record["t"]), parts[0], int(parts[1]), parts[2], t, record["rcpt"])
            )
        self.messages.extend(new)
        return new

    def of(self, target: str, round_number: int) -> list[Accepted]:
        kind = KINDS[target]
        return [m for m in self.messages if m.kind == kind and m.round == round_number]


# -- Tidings: the API ----------------------------------------------------------------------------


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
    )


def expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def user_id(n: int) -> str:
    return f"bench-{n}"


def email_of(n: int) -> str:
    return f"{user_id(n)}@bench.test"


def set_up(base_url: str, key: str, smtp_port: int, messages: int, clients: int) -> float:
    """Provider, template and profiles, through the API. Returns the seconds it took."""
    started = time.monotonic()
    provider = {"host": "127.0.0.1", "port": smtp_port, "security": "none"}
    provider |= {"from_email": FROM[1], "from_name": FROM[0]}
    with client(base_url, key) as api:
        expect(api.put("/providers/smtp", json={"config": provider}), 200, 201)
        expect(api.put(f"/notifications/{TEMPLATE_ID}", json=TEMPLATE), 200, 201)
        warmup = {"profile": {"email": "warmup@bench.test", "n": "warmup"}}
        expect(api.post(f"/profiles/{WARMUP_USER}", json=warmup), 200, 201)

    def create(chunk: list[int]) -> None:
        with client(base_url, key) as api:
            for n in chunk:
                if STOP.is_set():
                    return
                profile = {"profile": {"email": email_of(n), "n": n}}
                expect(api.post(f"/profiles/{user_id(n)}", json=profile), 200, 201)

    chunks = [list(range(i, messages, clients)) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(create, chunks))
    return time.monotonic() - started


@dataclass
class Request:
    first: int
    count: int
    t: float
    answered: float
    status: int


def send_all(
    base_url: str, key: str, messages: int, clients: int, round_number: int
) -> list[Request]:
    """Post the N messages, `BATCH` recipients per request, from `clients` threads."""
    batches = iter(range(0, messages, BATCH))
    lock = threading.Lock()
    done: list[Request] = []

    def worker() -> None:
        with client(base_url, key) as api:
            while not STOP.is_set():
                with lock:
                    first = next(batches, None)
                if first is None:
                    return
                count = min(BATCH, messages - first)
                t = time.time()
                body = {
                    "message": {
                        "to": [{"user_id": user_id(n)} for n in range(first, first + count)],
                        "template": TEMPLATE_ID,
                        "data": {"t": t, "round": round_number},
                    }
                }
                response = api.post("/send", json=body)
                with lock:
                    done.append(Request(first, count, t, time.time(), response.status_code))
                if response.status_code != 202:
                    raise BenchError(f"POST /send answered {response.status_code}: {response.text}")

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return sorted(done, key=lambda request: request.first)


# -- the floor: one thread, smtplib, one connection --------------------------------------------


def send_floor(smtp_port: int, messages: int, round_number: int) -> float:
    """The same N messages, built and sent one after the other on one connection. Returns
    the wall time the first one was built."""
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="bench", timeout=30) as smtp:
        first = time.time()
        for n in range(messages):
            if STOP.is_set():
                break
            t = repr(time.time())
            message = email_bytes(
                sender=FROM,
                to=email_of(n),
                subject=f"floor {round_number} {n} {t}",
                text=f"Hello {n}, this is benchmark message {t}.",
                html=f"<p>Hello {n}, this is benchmark message {t}.</p>",
                message_id=f"<floor.{round_number}.{n}@tidings.test>",
            )
            smtp.sendmail(FROM[1], [email_of(n)], message)
    return first


# -- the database --------------------------------------------------------------------------------


def status_counts(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT status, count(*) FROM message WHERE recipient != ? GROUP BY status",
            (WARMUP_USER,),
        ).fetchall()
        return {str(status): int(count) for status, count in rows}
    finally:
        connection.close()


def fsync_latency_ms(directory: Path, count: int = 40) -> dict[str, float | None]:
    """How long the data dir's filesystem takes to fsync a 16 KB append: every message's
    outcome is one SQLite commit (one fsync of the WAL) under the database's single write
    lock, so this bounds Tidings' rate whatever the CPU, and on a shared disk it varies from
    run to run as much as the CPU noise does."""
    probe = directory / "fsync-probe"
    times = []
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(descriptor, b"\0" * 16384)
            start = time.perf_counter()
            os.fsync(descriptor)
            times.append(time.perf_counter() - start)
    finally:
        os.close(descriptor)
        probe.unlink(missing_ok=True)
    return {"p50": ms(percentile(times, 0.5)), "p90": ms(percentile(times, 0.9))}


# -- one round ------------------------------------------------------------------------------------


@dataclass
class Round:
    target: str
    round: int
    messages: int
    accepted: int = 0
    duplicates: int = 0
    missing: int = 0
    wrong_recipient: int = 0
    sends_per_s: float = 0.0
    elapsed_s: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    api_seconds: float | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    other_processes_cpu_seconds: float | None = None
    idle_wait_s: float = 0.0


@dataclass
class Context:
    args: argparse.Namespace
    base_url: str
    key: str
    sink: Proc
    procs: list[Proc]
    record: SinkRecord
    database: Path


def wait_for_sink(ctx: Context, target: str, round_number: int, started: float) -> None:
    deadline = started + ctx.args.timeout
    while time.time() < deadline:
        ctx.record.poll()
        if len({m.n for m in ctx.record.of(target, round_number)}) >= ctx.args.messages:
            return
        for proc in ctx.procs:
            proc.check_alive()
        time.sleep(0.05)
    print(f"  warning: the sink did not get every {target} message within {ctx.args.timeout:.0f}s")


def run_round(ctx: Context, target: str, round_number: int) -> Round:
    args = ctx.args
    cpu_before = {proc.name: proc.cpu_seconds() for proc in ctx.procs}
    cpu_before["runner"] = own_cpu_seconds()
    busy_before = machine_busy_seconds()
    requests: list[Request] = []
    if target == "floor":
        first = send_floor(ctx.sink.port, args.messages, round_number)
        wait_for_sink(ctx, target, round_number, first)
    else:
        sending: dict[str, Any] = {}

        def post_everything() -> None:
            try:
                sending["requests"] = send_all(
                    ctx.base_url, ctx.key, args.messages, args.clients, round_number
                )
            except BaseException as exc:  # reported by the main thread
                sending["error"] = exc

        first = time.time()
        poster = threading.Thread(target=post_everything, daemon=True)
        poster.start()
        wait_for_sink(ctx, target, round_number, first)
        poster.join(60)
        if "error" in sending:
            raise BenchError(f"sending failed: {sending['error']!r}")
        requests = sending.get("requests", [])
        first = min((request.t for request in requests), default=first)
    cpu_after = {proc.name: proc.cpu_seconds() for proc in ctx.procs}
    cpu_after["runner"] = own_cpu_seconds()
    busy_after = machine_busy_seconds()
    cpu = {
        name: round(after - before, 2)
        for name, before in cpu_before.items()
        if before is not None and (after := cpu_after.get(name)) is not None
    }
    figures = outcome(target, round_number, args.messages, ctx.record, first)
    figures.cpu_seconds = cpu
    if busy_before is not None and busy_after is not None:
        # What the rest of the machine (other users' work, py-spy) used meanwhile.
        figures.other_processes_cpu_seconds = round(busy_after - busy_before - sum(cpu.values()), 1)
    if requests:
        figures.api_seconds = round(max(r.answered for r in requests) - first, 3)
    return figures


def outcome(
    target: str, round_number: int, messages: int, record: SinkRecord, first: float
) -> Round:
    accepted = record.of(target, round_number)
    per_recipient = collections.Counter(m.n for m in accepted)
    first_time: dict[str, Accepted] = {}
    for m in sorted(accepted, key=lambda m: m.at):
        first_time.setdefault(m.n, m)
    unique = list(first_time.values())
    last_accept = max((m.at for m in unique), default=first)
    elapsed = last_accept - first
    latencies = [m.at - m.t for m in unique if m.t is not None]
    return Round(
        target=target,
        round=round_number,
        messages=messages,
        accepted=len(unique),
        duplicates=sum(count - 1 for count in per_recipient.values() if count > 1),
        missing=len({str(n) for n in range(messages)} - set(per_recipient)),
        wrong_recipient=sum(
            1 for m in unique if not m.n.isdigit() or m.rcpt != [email_of(int(m.n))]
        ),
        sends_per_s=round(len(unique) / elapsed, 1) if elapsed > 0 else 0.0,
        elapsed_s=round(elapsed, 3),
        latency_ms={
            "p50": ms(percentile(latencies, 0.5)),
            "p99": ms(percentile(latencies, 0.99)),
            "max": ms(max(latencies, default=None)),
        },
    )


def settle(ctx: Context, timeout: float = 30.0) -> dict[str, int]:
    """Wait until Tidings has no message left to send; returns the final statuses."""
    deadline = time.time() + timeout
    statuses = status_counts(ctx.database)
    while time.time() < deadline and any(s in statuses for s in PENDING_STATUSES):
        time.sleep(0.25)
        statuses = status_counts(ctx.database)
    return statuses


def measure(ctx: Context) -> list[Round]:
    rounds = []
    args = ctx.args
    print(
        f"{args.rounds} rounds x (floor, tidings): {args.messages} messages each; Tidings "
        f"takes {BATCH} recipients per request from {args.clients} client threads"
    )
    for round_number in range(1, args.rounds + 1):
        order = TARGETS if round_number % 2 else TARGETS[::-1]
        for target in order:
            settle(ctx)
            idle = quiesce(ctx.procs)
            figures = run_round(ctx, target, round_number)
            figures.idle_wait_s = round(idle, 2)
            rounds.append(figures)
            print(
                f"  round {round_number} {target:<8} {figures.sends_per_s:>7.0f} sends/s  "
                f"({figures.accepted}/{figures.messages} in {figures.elapsed_s:.2f} s; "
                f"duplicates {figures.duplicates}, missing {figures.missing}; p99 from request "
                f"{figures.latency_ms['p99']} ms; waited {idle:.1f}s for idle processes first)"
            )
    return rounds


# -- set-up ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POST /send -> SMTP accept against one thread sending with smtplib."
    )
    parser.add_argument("--messages", type=int, help="messages a round (3000; quick 1000)")
    parser.add_argument("--rounds", type=int, help="rounds, each floor and tidings (3; quick 1)")
    parser.add_argument(
        "--worker",
        action="store_true",
        help="tidings serve with the API alone and one `tidings worker` sending, instead of "
        "a default tidings serve",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="consumer threads of the sending process (TIDINGS_CONSUMER_WORKERS; default: "
        "Tidings' own)",
    )
    parser.add_argument("--clients", type=int, default=2, help="concurrent API client threads")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="max seconds to wait for the sink a round"
    )
    parser.add_argument(
        "--py-spy",
        choices=["cpu", "wall", "gil"],
        default=None,
        help="profile the Tidings processes with py-spy during the rounds: `cpu` samples "
        "running threads only, `wall` also waiting ones (py-spy --idle)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(args, {"messages": 3000, "rounds": 3}, {"messages": 1000, "rounds": 1})
    if args.messages < 1 or args.clients < 1 or args.rounds < 1:
        parser.error("--messages, --rounds and --clients must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def start_tidings(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    tidings: str,
    work_dir: Path,
    tidings_env: dict[str, str],
) -> tuple[list[Proc], int]:
    """`tidings serve` (and with --worker, one `tidings worker`), answering; returns the
    processes and the API's port."""
    sending_env = dict(tidings_env)
    if args.threads is not None:
        sending_env["TIDINGS_CONSUMER_WORKERS"] = str(args.threads)
    serve_env = dict(tidings_env, TIDINGS_CONSUMER_WORKERS="0") if args.worker else sending_env
    port = free_port()
    print(f"starting tidings serve{' (API only)' if args.worker else ''} on :{port}")
    api = start_serve(stack, tidings, "api", work_dir / "serve.log", serve_env, port)

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        return False

    wait_for("tidings serve to answer /health", healthy, [api], 60)
    if not args.worker:
        return [api], port
    print("starting one tidings worker")
    worker = stack.enter_context(
        running("worker", [tidings, "worker"], work_dir / "worker.log", sending_env)
    )
    wait_for(
        "the worker to start",
        lambda: "Tidings worker:" in worker.log.read_text(errors="replace"),
        [api, worker],
        60,
    )
    return [api, worker], port


def warm_up(ctx: Context) -> None:
    """One message end to end through Tidings."""
    with client(ctx.base_url, ctx.key) as api:
        message = {"to": {"user_id": WARMUP_USER}, "template": TEMPLATE_ID}
        message["data"] = {"t": time.time(), "round": 0}
        expect(api.post("/send", json={"message": message}), 202)
    wait_for("the warm-up message in the sink", lambda: ctx.record.poll() or None, ctx.procs, 60)
    if ctx.record.unparsed or ctx.record.messages[0].t is None:
        raise BenchError(f"unexpected subject in the sink: {ctx.record.unparsed}")
    time.sleep(1.0)  # The warm-up delivery's last commit.


def summarize(
    rounds: list[Round], statuses: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for target in TARGETS:
        mine = [r for r in rounds if r.target == target]
        summary[target] = {
            "sends_per_s": round(statistics.median(r.sends_per_s for r in mine), 1),
            "round_sends_per_s": [r.sends_per_s for r in mine],
        }
    floors = [r for r in rounds if r.target == "floor"]
    tidings = [r for r in rounds if r.target == "tidings"]
    summary["round_ratios"] = [
        round(t.sends_per_s / f.sends_per_s, 3) if f.sends_per_s else None
        for f, t in zip(floors, tidings, strict=True)
    ]
    summary["statuses"] = statuses
    problems = [
        f"{r.target} round {r.round}: {r.duplicates} duplicates, {r.missing} missing, "
        f"{r.wrong_recipient} to the wrong recipient"
        for r in rounds
        if r.duplicates or r.missing or r.wrong_recipient
    ]
    if statuses.get("SENT", 0) != args.messages * args.rounds:
        problems.append(f"final message statuses {statuses}, not all SENT")
    summary["verification"] = {"ok": not problems, "problems": problems}
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals(STOP.set)

    env = clean_environment()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-send-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(env, data_dir, source, args.tidings_env)
        sink = start_sink(stack, work_dir, env)
        print(f"sink on :{sink.port}")
        procs, port = start_tidings(stack, args, tidings, work_dir, tidings_env)
        ctx = Context(
            args,
            f"http://127.0.0.1:{port}",
            api_key(tidings, data_dir, tidings_env),
            sink,
            [*procs, sink],
            SinkRecord(work_dir / "sink.jsonl"),
            data_dir / "tidings.db",
        )
        setup_s = set_up(ctx.base_url, ctx.key, sink.port, args.messages, args.clients)
        print(f"provider, template and {args.messages} profiles set up in {setup_s:.1f}s")
        warm_up(ctx)
        profiles: dict[str, Path] = {}
        if args.py_spy:
            profiles = start_py_spy(stack, procs, work_dir, env, args.py_spy, RESULTS_DIR)
        fsync_before = fsync_latency_ms(data_dir)
        rounds = measure(ctx)
        fsync_after = fsync_latency_ms(data_dir)
        statuses = settle(ctx)
        time.sleep(1.0)
        ctx.record.poll()  # Anything (a duplicate) that arrived late.
        for measured in rounds:
            late = outcome(measured.target, measured.round, args.messages, ctx.record, 0.0)
            measured.duplicates = late.duplicates
        data_filesystem = filesystem_of(data_dir.resolve())
        if profiles:
            stack.close()  # Stops py-spy (and everything else) so the profiles get written.

    summary = summarize(rounds, statuses, args)
    summary["data_dir_fsync_ms"] = {"before": fsync_before, "after": fsync_after}
    figures = verdict(
        "sends/s", summary["floor"]["sends_per_s"], summary["tidings"]["sends_per_s"], BUDGET
    )
    verification = summary.pop("verification")
    print(f"\nper-round ratios tidings/floor: {summary['round_ratios']}")
    print(f"final statuses {json.dumps(statuses)}; fsync p50/p90 {fsync_before} then {fsync_after}")
    print(
        "verification: every message accepted once, to its recipient; all SENT"
        if verification["ok"]
        else "verification FAILED:\n  " + "\n  ".join(verification["problems"])
    )
    print_verdict("send", figures)
    for name, path in profiles.items():
        print(f"  py-spy profile of {name}: {path}")
    result = {
        "benchmark": "send",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "source": {k: v for k, v in source.items() if k != "path"},
        "budget": figures,
        "settings": {
            "messages": args.messages,
            "rounds": args.rounds,
            "quick": args.quick,
            "tidings": "tidings serve (API) + one tidings worker"
            if args.worker
            else "tidings serve, defaults (API and in-process consumer)",
            "consumer_threads": args.threads or "Tidings' default",
            "recipients_per_request": BATCH,
            "api_clients": args.clients,
            "timeout_s": args.timeout,
            "tidings_env": args.tidings_env,
            "job_storage": "sqlite",
            "data_dir_filesystem": data_filesystem,
            "template": TEMPLATE,
            "py_spy": {"mode": args.py_spy, **{n: p.name for n, p in profiles.items()}},
        },
        "setup_s": round(setup_s, 2),
        "summary": summary,
        "verification": verification,
        "rounds": [asdict(r) for r in rounds],
    }
    output = args.output or RESULTS_DIR / f"send-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if verification["ok"] and figures["met"] else 1


if __name__ == "__main__":
    run_benchmark(main, "processes")
