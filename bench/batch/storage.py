"""What a batch costs without HTTP: the floor's write against Tidings' parse, checks and write.

The batch benchmark's floor spends a few microseconds of CPU per event, and Tidings answers
a batch only once its events are stored in its event table, with the indexes its queries
need. This measures, in one thread of this process and on a fresh SQLite data dir (the
embedded default, `synchronous` as Tidings sets it), what each side does per 100-event batch
of analytics-python tracks, in rounds that alternate:

- **floor**: `floor_app.store`, the floor's whole request but the HTTP: a row per event,
  one INSERT and one commit;
- **tidings checks**: what Tidings' event loop does to a batch before it hands it to the
  writer: parse within the JSON limits and validate each event (`batch_events`);
- **tidings write**: the ingest writer thread's work for the batch (`IngestWriter._write`:
  the key's scope, the rows, the insert with its key check and idempotency, the commit).

It prints the CPU microseconds per event of each, and the ratios of the floor to each of
Tidings' parts. The writer is one thread, so `floor ÷ tidings write` bounds the batch
benchmark's ratio from above whatever the rest costs; it is below the budget of 0.5 when
the writer's own write of an event costs more than twice the floor's whole request.

    .venv/bin/python bench/batch/storage.py [--batches 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

from tidings.ingest.tracking import batch_events
from tidings.ingest.validation import ValidEvent
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.kit import json_input
from tidings.kit.time import utcnow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor_app import TABLE, store
from run import batch_body

from common import in_process, open_sqlite

BATCH = 100


def _bodies(key: str, count: int, prefix: str) -> list[bytes]:
    return [batch_body(key, f"{prefix}-{n}", BATCH) for n in range(count)]


def _per_event_us(work: Callable[[bytes], object], bodies: list[bytes]) -> float:
    """CPU microseconds per event of `work` over the bodies."""
    started = time.process_time()
    for body in bodies:
        work(body)
    return (time.process_time() - started) * 1e6 / (len(bodies) * BATCH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="batches a part, a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="tidings-bench-storage-") as data_dir,
        in_process(Path(data_dir)) as tidings,
    ):
        key = tidings.key
        writer = IngestWriter(tidings.runtime.database, tidings.runtime.cipher)
        synchronous = tidings.runtime.settings.sqlite_synchronous.upper()
        floor = open_sqlite(Path(data_dir) / "floor.db", synchronous)
        floor.execute(TABLE)

        def floor_store(body: bytes) -> None:
            store(floor, orjson.loads(body)["batch"])

        def tidings_checks(body: bytes) -> list[ValidEvent]:
            parsed = json_input.loads(body)
            return batch_events(parsed, utcnow(), len(body))

        def tidings_write(items: list[IngestItem]) -> None:
            writer._write(items)

        rounds: list[dict[str, float]] = []
        for number in range(args.rounds):
            prefix = f"r{number}-{uuid.uuid4().hex[:8]}"
            floor_us = _per_event_us(floor_store, _bodies(key, args.batches, f"{prefix}-f"))
            bodies = _bodies(key, args.batches, f"{prefix}-t")
            checks_us = _per_event_us(tidings_checks, bodies)
            batches = [
                [IngestItem(key=key, event=event) for event in tidings_checks(body)]
                for body in bodies
            ]
            started = time.process_time()
            for items in batches:
                tidings_write(items)
            write_us = (time.process_time() - started) * 1e6 / (len(batches) * BATCH)
            rounds.append({"floor": floor_us, "checks": checks_us, "write": write_us})
            print(
                f"  round {number + 1}: floor {floor_us:.1f} us/event, Tidings checks "
                f"{checks_us:.1f}, write {write_us:.1f}"
            )
        floor.close()

    median = {part: statistics.median(r[part] for r in rounds) for part in rounds[0]}
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "batches": args.batches,
        "rounds": rounds,
        "median_us_per_event": median,
        "floor_over_write": median["floor"] / median["write"],
        "floor_over_checks_and_write": median["floor"] / (median["checks"] + median["write"]),
    }
    print(json.dumps(result, indent=2))
    print(
        f"floor {median['floor']:.1f} us/event; Tidings checks {median['checks']:.1f}, write "
        f"{median['write']:.1f}: floor / write {result['floor_over_write']:.2f}, floor / "
        f"(checks + write) {result['floor_over_checks_and_write']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
