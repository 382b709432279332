"""What a single-event request costs without HTTP: Tidings' threads against the echo's.

The ingest benchmark's ratio moves by 0.05 or more between runs of the same commit, since
wrk and the server share two cores. This measures the same request in one process, with no
sockets: the product page's track event is handed to the ASGI app as uvicorn would hand it,
by 32 concurrent tasks on uvloop, and the CPU time of each thread is read from its own
clock. Rounds alternate between:

- **echo**: the floor, `echo_app.app` (a bare Starlette app echoing the body);
- **tidings**: `tidings.app.create_app` with the lifespan `tidings serve` runs (its ingest
  writer and enqueuer threads) and no consumer thread, on a fresh SQLite data dir: the
  fast path, the key check, parsing and validation, the group-committed insert, and the
  event loop's share of handing each request to the writer and back.

It prints, per request, the CPU of the event loop's thread, of the writer thread, of the
enqueuer thread, and of the process, for each side. The event loop is one thread and the
echo's loop does nothing else, so `echo loop + tidings loop` against `echo loop` says how
much of the live server's request Tidings adds on the thread that bounds it; what uvicorn
does with the sockets (the same for both) is left out.

    .venv/bin/python bench/ingest/loop.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from tidings.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from echo_app import app as echo_app
from run import SAMPLE_EVENT

from common import in_process

CONCURRENCY = 32
App = Callable[..., Any]


def _body(message_id: str) -> bytes:
    return json.dumps({**SAMPLE_EVENT, "messageId": message_id}).encode()


async def _request(app: App, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One POST /inbound/segment through the ASGI app; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/inbound/segment",
        "raw_path": b"/inbound/segment",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _cpu(thread: threading.Thread | None) -> float:
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


async def _round(
    app: App,
    headers: list[tuple[bytes, bytes]],
    bodies: list[bytes],
    expected: int,
    threads: dict[str, threading.Thread | None],
) -> dict[str, float]:
    """CPU microseconds per request of the loop, each named thread and the process."""
    queue = list(reversed(bodies))

    async def client() -> None:
        while queue:
            status = await _request(app, headers, queue.pop())
            if status != expected:
                raise SystemExit(f"answered {status}, not {expected}")

    before = {name: _cpu(thread) for name, thread in threads.items()}
    loop_before, process_before = time.thread_time(), time.process_time()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    per = 1e6 / len(bodies)
    result = {
        "loop": (time.thread_time() - loop_before) * per,
        "process": (time.process_time() - process_before) * per,
    }
    for name, thread in threads.items():
        result[name] = (_cpu(thread) - before[name]) * per
    return result


async def _measure(args: argparse.Namespace, data_dir: Path) -> list[dict[str, dict[str, float]]]:
    with in_process(data_dir) as tidings:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {tidings.key}".encode()),
            (b"content-type", b"application/json"),
            (b"user-agent", b"SegmentCourier"),
        ]
        app = create_app(tidings.runtime, consumer_workers=0)
        async with app.router.lifespan_context(app):
            writer = app.state.key_check.writer
            threads = {"writer": writer._thread, "enqueuer": writer._enqueuer}
            sides: dict[str, tuple[App, int, dict[str, threading.Thread | None]]] = {
                "echo": (echo_app, 200, {}),
                "tidings": (app, 202, threads),
            }
            for name, (target, expected, _) in sides.items():  # warm up
                warm = [_body(f"warm-{name}-{n}") for n in range(500)]
                await _round(target, headers, warm, expected, {})
            rounds = []
            for number in range(args.rounds):
                prefix = uuid.uuid4().hex[:8]
                order = list(sides) if number % 2 == 0 else list(reversed(sides))
                measured = {}
                for name in order:
                    target, expected, named = sides[name]
                    bodies = [_body(f"{prefix}-{name}-{n}") for n in range(args.requests)]
                    measured[name] = await _round(target, headers, bodies, expected, named)
                rounds.append(measured)
                print(f"  round {number + 1}: " + "; ".join(_line(measured[n], n) for n in sides))
            return rounds


def _line(figures: dict[str, float], name: str) -> str:
    return f"{name} " + ", ".join(f"{part} {value:.1f}" for part, value in figures.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests a side, a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidings-bench-loop-") as data_dir:
        rounds = uvloop.run(_measure(args, Path(data_dir)))
    median = {
        side: {part: statistics.median(r[side][part] for r in rounds) for part in rounds[0][side]}
        for side in rounds[0]
    }
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "requests": args.requests,
        "rounds": rounds,
        "median_us_per_request": median,
    }
    print(json.dumps(result, indent=2))
    print(
        "CPU us per request (median): "
        + "; ".join(_line(figures, side) for side, figures in median.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
