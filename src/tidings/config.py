"""Settings, read from `TIDINGS_*` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.kit.allowances import parse_allowances

# Consumer threads when TIDINGS_CONSUMER_WORKERS is not set. `tidings serve` shares one
# interpreter with the API, and on SQLite every write waits for one lock: a second thread
# there splits the events into smaller groups and costs more CPU per event than it overlaps
# (measured with bench/pipeline). A `tidings worker` has the process to itself.
SERVE_CONSUMER_WORKERS = 1
WORKER_CONSUMER_WORKERS = 2


class Settings(BaseSettings):
    """Every setting Tidings reads. See the configuration reference in the README."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    data_dir: Path = Path(".tidings")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # One line per request from the server (uvicorn), the query string included. Refused
    # requests are logged either way (http_errors.log_error_answer).
    access_log: bool = False
    # `json`: one JSON object per log line, with the trace and span ids (docs/observability.md).
    log_format: Literal["text", "json"] = "text"
    # A port of its own for the Prometheus scrape, without a key (scrape/server.py);
    # `GET /metrics` on the API takes a secret key either way.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    job_storage: str = "sqlite"
    job_queue: str = "tidings"
    secret_key: SecretStr | None = None
    consumer_workers: int | None = None
    # Provider calls at once per process, on the delivery pool (jobs/deliveries.py).
    delivery_threads: int = Field(default=4, ge=1, le=64)
    # Outbound webhook requests at once per process, on their own threads (jobs/webhooks.py),
    # and how long each may take to connect, to send, and for each read.
    webhook_threads: int = Field(default=4, ge=1, le=64)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    ingest_priority: bool = True
    sqlite_synchronous: Literal["full", "normal"] = "full"
    sweep_stale_seconds: float = 30.0
    event_max_attempts: int = 5
    message_timeout_seconds: float = 72 * 3600
    failover_window_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    # A backstop only: work of a process that is gone is re-driven when its lease expires.
    # Longer than an SMTP provider's wait for the reply to DATA (ten minutes).
    sending_stale_seconds: float = 900.0
    worker_lease_seconds: float = 10.0
    idempotency_ttl_seconds: float = 24 * 3600
    # Soft bounces in a row (no delivery between them) after which an address is suppressed
    # (reason SOFT_BOUNCES); 0 never suppresses for soft bounces (docs/deliverability.md).
    soft_bounce_limit: int = Field(default=3, ge=0, le=1000)
    public_url: str | None = None
    # An open or click this soon after the send is a scanner's (engagement/machine.py).
    machine_engagement_seconds: float = Field(default=2.0, ge=0)
    # Messages per second each environment's broadcasts release (broadcast/service.py).
    broadcast_rate: float = Field(default=100.0, gt=0, le=100_000)
    # Replays (docs/automations.md, "Replay"): child processes per worker, and each one's
    # time and address-space limits.
    replay_processes: int = Field(default=1, ge=1, le=16)
    replay_timeout_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    replay_memory_mb: int = Field(default=2048, ge=256, le=1_048_576)
    tracking_rate_limit: float = 0.0
    tracking_rate_burst: float = 0.0
    # Internal targets outbound requests may reach: host[:port], IP[:port] and CIDR entries,
    # comma-separated (kit/outbound.py). Everything else internal is refused.
    outbound_allow: str = ""

    @field_validator("outbound_allow")
    @classmethod
    def _valid_allowances(cls, value: str) -> str:
        parse_allowances(value)
        return value

    auth_failure_limit: int = 20
    auth_failure_window_seconds: float = 60.0
    sign_in_failure_limit: int = 5
    sign_in_client_failure_limit: int = 20
    sign_in_lockout_seconds: float = 900.0

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: `TIDINGS_DATABASE_URL`, or SQLite in the data dir."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'tidings.db').resolve()}"

    def consumer_threads(self, *, embedded: bool) -> int:
        """Consumer threads for `tidings serve` (`embedded`) or `tidings worker`."""
        if self.consumer_workers is not None:
            return self.consumer_workers
        return SERVE_CONSUMER_WORKERS if embedded else WORKER_CONSUMER_WORKERS

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Let users write `postgresql://` or `postgres://`; Tidings drives Postgres with psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
