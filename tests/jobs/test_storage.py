"""Each job storage Tidings supports carries the processing job from ingest to a consumer."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.payloads import identify
from tidings.config import Settings
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.jobs.engine import ConfigurationError, build_huey
from tidings.migrate import upgrade
from tidings.models import Event
from tidings.runtime import build_runtime
from tidings.workspace import service as workspace_service


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "job_storage" in metafunc.fixturenames:
        storages = ["sqlite"]
        if os.environ.get("TIDINGS_TEST_REDIS_URL"):
            storages.append(os.environ["TIDINGS_TEST_REDIS_URL"])
        if os.environ.get("TIDINGS_TEST_POSTGRES_URL"):
            storages.append(os.environ["TIDINGS_TEST_POSTGRES_URL"])
        metafunc.parametrize("job_storage", storages)


def test_ingest_to_processing_through_the_storage(tmp_path: Path, job_storage: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        job_storage=job_storage,
        job_queue=f"tidings-storage-{secrets.token_hex(4)}",
    )
    runtime = build_runtime(settings)
    upgrade(runtime.database)
    with runtime.database.write() as (session, _):
        created = workspace_service.bootstrap(session, runtime.cipher)
    assert created is not None
    key = next(view.key for view in created if view.environment == "test")
    assert key is not None
    consumer = runtime.jobs.consumer(2, embedded=True)
    consumer.start()
    try:
        writer = IngestWriter(runtime.database, runtime.cipher)
        (result,) = writer.write([IngestItem(key, validate_segment_event(identify()))])
        assert result.event_id is not None

        def processed() -> bool:
            with runtime.database.read() as session:
                event = session.get(Event, result.event_id)
                return event is not None and event.status == "processed"

        wait_for(processed, what=f"processing through {job_storage.split(':')[0]}")
    finally:
        consumer.stop(graceful=True)
        runtime.jobs.huey.flush()
        runtime.close()


def test_unknown_storage_is_a_clear_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TIDINGS_JOB_STORAGE"):
        build_huey(Settings(data_dir=tmp_path, job_storage="kafka://nowhere"))


def test_an_idle_worker_thread_wakes_when_its_process_queues_a_job(tmp_path: Path) -> None:
    """A consumer thread polling the SQLite queue sleeps until its next poll, unless a job
    queued by this process wakes it: here the poll is an hour away."""
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", job_storage="sqlite"))
    try:
        consumer = runtime.jobs.consumer(1, embedded=True)
        (worker, _), *_ = consumer.worker_threads
        worker.delay = worker.max_delay = 3600.0
        sleeping = threading.Thread(target=worker.sleep, daemon=True)
        sleeping.start()
        runtime.jobs.enqueue_events([1])
        sleeping.join(timeout=60)
        assert not sleeping.is_alive()
        assert runtime.jobs.huey.pending_count() == 1
    finally:
        runtime.close()
