"""A replay's child process (replay/process.py starts it): `python -m tidings.replay_run.child
REPLAY_PK`, its settings from the TIDINGS_* environment. It caps its address space, then
lowers its CPU priority (so a niced child is a capped one), then carries the replay out
(replay_run/runner.py)."""

from __future__ import annotations

import logging
import os
import resource
import sys

from tidings.config import Settings
from tidings.db import Database, create_database_engine
from tidings.replay_run import runner

NICE = 19


def main(argv: list[str]) -> int:
    (replay_pk,) = (int(value) for value in argv)
    settings = Settings()
    limit = settings.replay_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(NICE)
    logging.basicConfig(level=logging.WARNING)
    database = Database(create_database_engine(settings))
    try:
        runner.run(database, replay_pk, timeout=settings.replay_timeout_seconds)
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
