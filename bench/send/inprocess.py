"""The worker's per-message work in one thread of this process: CPU time and SQL statements.

A companion to run.py for "where does the time go": no queue, no API process competing for
the cores. It sets up a temporary data dir through the API in-process (FastAPI TestClient),
captures the message ids POST /send would enqueue, then runs the job bodies the worker would
run (`JobEngine._run_process_messages` in groups of 20, or `_run_process_message` one by one
on older commits) against `sink.py` in a subprocess, counting the SQL statements SQLite
runs (its trace callback, which sees each row of an executemany as one statement). It
reaches into JobEngine's internals, so it may need adjusting when they change.

    PYTHONPATH=<src dir> .venv/bin/python bench/send/inprocess.py [--messages 1000] [--profile]

Without PYTHONPATH it measures the working tree. `--profile` adds a cProfile listing
(cumulative; cProfile's own overhead roughly doubles the times, the shares hold).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import LOOPBACK_ALLOWED

HERE = Path(__file__).resolve().parent
GROUP = 20
WARMUP = 20
TEMPLATE = {
    "content": {
        "email": {
            "subject": "bench {{ data.t }} {{ profile.n }}",
            "text": "Hello {{ profile.n }}, this is benchmark message {{ data.t }}.",
            "html": "<p>Hello {{ profile.n }}, this is benchmark message {{ data.t }}.</p>",
        }
    }
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    args = parser.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import event

    import tidings
    from tidings.app import create_app
    from tidings.config import Settings
    from tidings.migrate import upgrade
    from tidings.runtime import build_runtime
    from tidings.workspace import service as workspace_service

    work_dir = Path(tempfile.mkdtemp(prefix="tidings-inprocess-"))
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py"), "--out", str(work_dir / "sink.jsonl")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert sink.stdout is not None
        port = json.loads(sink.stdout.readline())["port"]
        runtime = build_runtime(
            Settings(
                data_dir=work_dir / "data",
                consumer_workers=0,
                outbound_allow=LOOPBACK_ALLOWED,  # the SMTP sink listens on loopback
            )
        )
        upgrade(runtime.database)
        with runtime.database.write() as (session, _):
            workspace_service.bootstrap(session, runtime.cipher)
        with runtime.database.read() as session:
            keys = workspace_service.list_keys(session, runtime.cipher)
        key = next(k.key for k in keys if k.environment == "test")

        # Capture what POST /send would enqueue instead of queueing it.
        enqueued: list[str] = []
        jobs: Any = runtime.jobs
        jobs._process_message = enqueued.append
        if hasattr(jobs, "_process_messages"):
            jobs._process_messages = enqueued.extend
        grouped = hasattr(jobs, "_run_process_messages")

        total = args.messages + WARMUP
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(runtime, consumer_workers=0)) as api:
            config = {"host": "127.0.0.1", "port": port, "security": "none"}
            config["from_email"] = "bench@tidings.test"
            for method, path, body in (
                ("PUT", "/providers/smtp", {"config": config}),
                ("PUT", "/notifications/bench", TEMPLATE),
            ):
                response = api.request(method, path, json=body, headers=headers)
                assert response.status_code in (200, 201), response.text
            for n in range(total):
                profile = {"profile": {"email": f"u{n}@bench.test", "n": n}}
                api.post(f"/profiles/u{n}", json=profile, headers=headers)
            for start in range(0, total, 100):
                to = [{"user_id": f"u{n}"} for n in range(start, min(start + 100, total))]
                message = {"to": to, "template": "bench", "data": {"t": time.time()}}
                response = api.post("/send", json={"message": message}, headers=headers)
                assert response.status_code == 202, response.text

        statements: collections.Counter[str] = collections.Counter()

        def _count(sql: str) -> None:
            statements[sql.split(None, 1)[0].upper()] += 1

        # SQLite's own trace: every statement it runs, those sent on the driver's cursor
        # (the send path's outcome) and BEGIN/COMMIT included. New connections only, so
        # the pool is emptied first.
        @event.listens_for(runtime.database.engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(_count)

        runtime.database.engine.dispose()

        def run(ids: list[str]) -> None:
            if grouped:
                for start in range(0, len(ids), GROUP):
                    jobs._run_process_messages(ids[start : start + GROUP])
            else:
                for message_id in ids:
                    jobs._run_process_message(message_id)

        run(enqueued[:WARMUP])
        statements.clear()
        work = enqueued[WARMUP:]
        profiler = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        run(work)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        count = len(work)
        print(f"tidings from {Path(tidings.__file__).parent}")
        print(
            f"{count} messages, {'groups of ' + str(GROUP) if grouped else 'one per job'}: "
            f"{1000 * wall / count:.2f} ms wall, {1000 * cpu / count:.2f} ms CPU per message "
            f"({count / wall:.0f}/s in one thread)"
        )
        per_message = {kind: round(n / count, 2) for kind, n in sorted(statements.items())}
        print(f"SQL statements per message: {sum(statements.values()) / count:.1f} {per_message}")
        if profiler is not None:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(r"tidings/|smtplib|email/|liquid", 40)
        runtime.close()
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
