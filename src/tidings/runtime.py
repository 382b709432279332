"""The long-lived objects of one Tidings process, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from cryptography.fernet import Fernet

from tidings.config import Settings
from tidings.db import Database, create_database_engine
from tidings.inbox.service import InboxBroker
from tidings.jobs.engine import JobEngine, build_huey
from tidings.jobs.lease import Lease
from tidings.kit.crypto import fernet_for, load_or_create_secret
from tidings.message.pipeline import PipelineContext
from tidings.preference.service import public_base_url, unsubscribe_key
from tidings.provider.registry import close_all as close_all_providers
from tidings.workspace.keys import KeyCipher


@dataclass
class Runtime:
    settings: Settings
    secret: bytes
    database: Database
    cipher: KeyCipher
    config_cipher: Fernet
    http: httpx.Client
    unsubscribe_key: bytes
    inbox_broker: InboxBroker
    jobs: JobEngine

    def close(self) -> None:
        close_all_providers()
        self.jobs.stop_lease()
        self.jobs.close()
        self.http.close()
        self.database.dispose()


def build_runtime(settings: Settings) -> Runtime:
    secret = load_or_create_secret(
        settings.data_dir,
        settings.secret_key.get_secret_value() if settings.secret_key else None,
    )
    database = Database(create_database_engine(settings))
    config_cipher = fernet_for(secret, "tidings provider config")
    http = httpx.Client(timeout=15.0, follow_redirects=False)
    broker = InboxBroker()
    context = PipelineContext(
        database,
        settings,
        config_cipher,
        http,
        unsubscribe_key=unsubscribe_key(secret),
        base_url=public_base_url(settings),
        inbox_broker=broker,
        lease=Lease(database, settings),
    )
    return Runtime(
        settings=settings,
        secret=secret,
        database=database,
        cipher=KeyCipher(fernet_for(secret, "tidings api keys")),
        config_cipher=config_cipher,
        http=http,
        unsubscribe_key=context.unsubscribe_key,
        inbox_broker=broker,
        jobs=JobEngine(build_huey(settings), context),
    )
