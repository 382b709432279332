"""What a worker needs to carry out jobs of every domain: built once per process by the
runtime and handed to the job engine, the message pipeline and the run engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from cryptography.fernet import Fernet

from tidings.config import Settings
from tidings.db import Database
from tidings.inbox.service import InboxBroker
from tidings.provider.service import ConfiguredProviders
from tidings.worker.lease import Lease


@dataclass(frozen=True)
class WorkerContext:
    database: Database
    settings: Settings
    config_cipher: Fernet
    http: httpx.Client
    unsubscribe_key: bytes = b""
    # Signs tracked links and open pixels (engagement/links.py); empty: no tracking.
    engagement_key: bytes = b""
    base_url: str = ""
    inbox_broker: InboxBroker | None = None
    # The process's worker lease: a `sending` attempt is stamped with its owner id.
    lease: Lease | None = None
    providers: ConfiguredProviders = field(init=False)

    @property
    def owner(self) -> str | None:
        return self.lease.owner if self.lease is not None else None

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", ConfiguredProviders(self.config_cipher, self.http))
