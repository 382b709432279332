"""The long-lived objects of one Tidings process, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from cryptography.fernet import Fernet

from tidings.config import Settings
from tidings.db import Database, create_database_engine
from tidings.inbox.service import InboxBroker
from tidings.jobs.engine import JobEngine, build_huey
from tidings.kit.crypto import fernet_for, load_or_create_secret
from tidings.kit.outbound import OutboundClient, OutboundGuard
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
    outbound: OutboundGuard
    unsubscribe_key: bytes
    inbox_broker: InboxBroker
    jobs: JobEngine

    def close(self) -> None:
        close_all_providers()
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
    # Every provider, fetch-data and data source request goes through this one client, so
    # none can be aimed at an internal address the operator has not allowed.
    outbound = OutboundGuard.from_setting(settings.outbound_allow)
    http = OutboundClient(outbound, timeout=15.0)
    broker = InboxBroker()
    context = PipelineContext(
        database,
        settings,
        config_cipher,
        http,
        unsubscribe_key=unsubscribe_key(secret),
        base_url=public_base_url(settings),
        inbox_broker=broker,
    )
    return Runtime(
        settings=settings,
        secret=secret,
        database=database,
        cipher=KeyCipher(fernet_for(secret, "tidings api keys")),
        config_cipher=config_cipher,
        http=http,
        outbound=outbound,
        unsubscribe_key=context.unsubscribe_key,
        inbox_broker=broker,
        jobs=JobEngine(build_huey(settings), context),
    )
