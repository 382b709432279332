"""Replay beside live traffic: how much a replay slows live processing.

It starts what bench/pipeline starts (the SMTP sink, `tidings serve` with its defaults, the
floor app, which stays idle), sets up the same automation, and stores `--events` track events
of it through `/v1/batch` while the automation is disabled (they are processed, and nothing is
sent), then enables it again. Then, at a fixed `--rate` of live events (open-loop, as
bench/pipeline sends them):

1. **alone**: `--seconds` of live events; their latency (sink accept - request written);
2. **beside a replay**: `POST /automations/bench-pipeline/replay` of those stored events
   (a draft with a changed subject; the automation sent nothing for them, so every message
   is "added"), then the same live load while the replay runs in its child process.

It reports both latencies, their ratio, the replay's rate (events/s), and the replay child's
peak resident memory (sampled every 0.2 s). The step beside the replay counts only if the
replay was still running when it ended.

    .venv/bin/python bench/replay/run.py [--events 20000] [--rate 100] [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from common import (  # noqa: E402
    RESULTS_DIR,
    add_common_arguments,
    apply_defaults,
    clean_environment,
    machine,
    make_work_dir,
    source_tree,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    wait_for,
    wait_for_api_key,
    write_result,
)

# bench/pipeline/run.py, by its path: this file has the same name.
_spec = importlib.util.spec_from_file_location("pipeline_run", BENCH / "pipeline" / "run.py")
assert _spec is not None
assert _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["pipeline_run"] = pipeline
_spec.loader.exec_module(pipeline)

SEED_FROM = 10_000_000
BATCH = 500


def seed(base_url: str, key: str, run_tag: str, events: int, users: int) -> None:
    """`events` track events through /v1/batch (their seqs from SEED_FROM)."""
    with httpx.Client(base_url=base_url, auth=(key, ""), timeout=120) as api:
        for start in range(0, events, BATCH):
            batch = [
                {
                    "type": "track",
                    "event": pipeline.EVENT_NAME,
                    "userId": pipeline.user_id(seq, users),
                    "messageId": f"{run_tag}-seed-{seq}",
                    "properties": {"seq": SEED_FROM + seq},
                }
                for seq in range(start, min(start + BATCH, events))
            ]
            answer = api.post("/v1/batch", json={"batch": batch})
            answer.raise_for_status()


def enable(base_url: str, key: str, *, enabled: bool) -> None:
    automation = {**pipeline.AUTOMATION, "enabled": enabled}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        answer = api.put(f"/automations/{pipeline.AUTOMATION_ID}", json=automation)
        answer.raise_for_status()


def replay_children() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if b"tidings.replay_run.child" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


class RssSampler(threading.Thread):
    """The highest resident memory of any replay child, sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for pid in replay_children():
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="stored events to replay (20,000)")
    parser.add_argument("--rate", type=float, help="live events/s (100)")
    parser.add_argument("--seconds", type=float, help="seconds of live events (30)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--drain-bound", type=float, default=5.0)
    parser.add_argument("--p99-ms", type=float, default=250.0)
    parser.add_argument("--lag-bound-ms", type=float, default=50.0)
    parser.add_argument("--settle-timeout", type=float, default=1800.0)
    parser.add_argument("--replay-timeout", type=float, default=3600.0)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(
        args,
        {"events": 20_000, "seconds": 30.0, "rate": 100.0},
        {"events": 2_000, "seconds": 8.0, "rate": 20.0},
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals()
    started = dt.datetime.now(dt.UTC)
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-replay-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(clean_environment(), data_dir, source, args.tidings_env)
        sink, server, floor = pipeline.start_processes(stack, args, tidings, work_dir, tidings_env)

        key = wait_for_api_key(tidings, data_dir, tidings_env, [server])
        base_url = f"http://127.0.0.1:{server.port}"
        pipeline.set_up(base_url, key, sink.port, args.users)
        run_tag = f"replay{started:%H%M%S}"
        target = pipeline.tidings_target(server, key, run_tag, data_dir / "tidings.db")
        bench = pipeline.Bench(
            args,
            pipeline.SinkRecord(work_dir / "sink.jsonl"),
            [server, floor, sink],
            {"tidings": target, "floor": pipeline.floor_target(floor, "idle")},
        )
        pipeline.warm_up(bench, target)
        window_from = dt.datetime.now(dt.UTC)
        print(f"storing {args.events} events through /v1/batch, the automation disabled")
        enable(base_url, key, enabled=False)
        seed(base_url, key, run_tag, args.events, args.users)
        if not pipeline.settle(bench, args.settle_timeout):
            print("the stored events were not all processed")
            return 1
        window_to = dt.datetime.now(dt.UTC)
        enable(base_url, key, enabled=True)

        alone, _, _ = pipeline.run_rate(bench, target, args.rate)
        pipeline.print_step(alone)
        pipeline.settle(bench, args.settle_timeout)

        draft = {
            **pipeline.AUTOMATION,
            "steps": [
                {"action": "send", "template": pipeline.AUTOMATION_ID, "data": {"seq": "replayed"}}
            ],
        }
        draft["name"] = "Pipeline benchmark, replayed"
        sampler = RssSampler()
        sampler.start()
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as api:
            body = {
                "from": window_from.isoformat(),
                "to": window_to.isoformat(),
                "limit": args.events,
                "definition": draft,
            }
            answer = api.post(f"/automations/{pipeline.AUTOMATION_ID}/replay", json=body)
            answer.raise_for_status()
            location = answer.headers["Location"]
            replay_started = time.monotonic()
            wait_for(
                "the replay to start",
                lambda: api.get(location).json()["status"] == "running",
                [server],
                60,
            )
            beside, _, _ = pipeline.run_rate(bench, target, args.rate)
            during = api.get(location).json()
            pipeline.print_step(beside)
            replay: dict[str, Any] = wait_for(
                "the replay to finish",
                lambda: (
                    (found := api.get(location).json())["status"] not in ("queued", "running")
                    and found
                ),
                [server],
                args.replay_timeout,
            )
            replay_seconds = time.monotonic() - replay_started
        sampler.stop.set()
        sampler.join()

    overlapped = during["status"] == "running"
    p99_alone, p99_beside = alone.outcome.latency_ms.p99, beside.outcome.latency_ms.p99
    ratio = round(p99_beside / p99_alone, 2) if p99_alone and p99_beside else None
    figures = {
        "live_rate": args.rate,
        "alone_p50_ms": alone.outcome.latency_ms.p50,
        "alone_p99_ms": p99_alone,
        "beside_p50_ms": beside.outcome.latency_ms.p50,
        "beside_p99_ms": p99_beside,
        "p99_ratio": ratio,
        "beside_verdict": beside.verdict,
        "replay_overlapped_the_step": overlapped,
        "replay_status": replay["status"],
        "replay_events": replay["progress"]["events_done"],
        "replay_seconds": round(replay_seconds, 1),
        "replay_events_per_s": round(replay["progress"]["events_done"] / replay_seconds, 1),
        "replay_child_peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "replay_counts": (replay.get("diff") or {}).get("counts"),
    }
    for name, value in figures.items():
        print(f"  {name}: {value}")
    result = {
        "benchmark": "replay",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "source": {k: v for k, v in source.items() if k != "path"},
        "figures": figures,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    write_result(result, args.output or RESULTS_DIR / f"replay-{started:%Y%m%dT%H%M%SZ}.json")
    return 0 if overlapped and replay["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
