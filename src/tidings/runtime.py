"""The long-lived objects of one Tidings process, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.fernet import Fernet

from tidings.automation import membership
from tidings.config import Settings
from tidings.db import Database, create_database_engine
from tidings.engagement.links import engagement_key
from tidings.inbox.service import InboxBroker
from tidings.jobs.engine import JobEngine, build_huey
from tidings.kit.crypto import fernet_for, load_or_create_secret
from tidings.kit.outbound import OutboundClient, OutboundGuard
from tidings.preference.service import public_base_url, unsubscribe_key
from tidings.replay.process import ReplayProcesses
from tidings.worker.context import WorkerContext
from tidings.worker.lease import Lease
from tidings.workspace.keys import KeyCipher
from tidings.workspace.limits import AuthLimits


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
    engagement_key: bytes
    inbox_broker: InboxBroker
    jobs: JobEngine
    auth_limits: AuthLimits

    def provide(self, state: Any) -> None:
        """Put what endpoints depend on, each on its own, on an app's `state`
        (tidings.dependencies reads them by these names)."""
        state.database = self.database
        state.settings = self.settings
        state.key_cipher = self.cipher
        state.config_cipher = self.config_cipher
        state.outbound = self.outbound
        state.http = self.http
        state.auth_limits = self.auth_limits
        state.secret = self.secret
        state.unsubscribe_key = self.unsubscribe_key
        state.engagement_key = self.engagement_key
        state.inbox_broker = self.inbox_broker

    def close(self) -> None:
        self.jobs.replays.close()
        self.jobs.context.providers.close()
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
    # Every provider, fetch-data and data source request goes through this one client, so
    # none can be aimed at an internal address the operator has not allowed.
    outbound = OutboundGuard.from_setting(settings.outbound_allow)
    http = OutboundClient(outbound, timeout=15.0)
    broker = InboxBroker()
    context = WorkerContext(
        database,
        settings,
        config_cipher,
        http,
        unsubscribe_key=unsubscribe_key(secret),
        engagement_key=engagement_key(secret),
        base_url=public_base_url(settings),
        inbox_broker=broker,
        lease=Lease(database, settings),
    )
    # The job engine starts replays in the processes given, and keeps their queue.
    jobs = JobEngine(build_huey(settings), context, ReplayProcesses(database, settings))
    # Every unit of work's outbox reaches the queue through the job engine.
    database.dispatcher = jobs
    # Users whose profile or lists a unit of work changed move in or out of audiences in it.
    database.before_commit.append(membership.refresh_touched)
    return Runtime(
        settings=settings,
        secret=secret,
        database=database,
        cipher=KeyCipher.from_secret(secret),
        config_cipher=config_cipher,
        http=http,
        outbound=outbound,
        unsubscribe_key=context.unsubscribe_key,
        engagement_key=context.engagement_key,
        inbox_broker=broker,
        jobs=jobs,
        auth_limits=AuthLimits.from_settings(settings),
    )
