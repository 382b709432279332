"""The long-lived objects of one Tidings process, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from cryptography.fernet import Fernet

from tidings.config import Settings
from tidings.db import Database, create_database_engine
from tidings.inbox.service import InboxBroker
from tidings.jobs.context import WorkerContext
from tidings.jobs.engine import JobEngine, build_huey
from tidings.jobs.lease import Lease
from tidings.kit.crypto import fernet_for, load_or_create_secret
from tidings.kit.outbound import OutboundClient, OutboundGuard
from tidings.kit.ratelimit import RecentValues, TokenBuckets
from tidings.preference.service import public_base_url, unsubscribe_key
from tidings.workspace.keys import KeyCipher


@dataclass(frozen=True)
class AuthLimits:
    """Failed authentications, counted per process (`docs/security.md`, "Rate limits").

    `api_clients`: wrong API keys per client address; `accounts` and `sign_in_clients`: wrong
    Studio passwords per account and per client address. Each locks its key once spent.
    `accepted_keys`: the API keys this process accepted lately, which still pass while their
    client address is locked (senders such as Segment share addresses).
    """

    api_clients: TokenBuckets
    accounts: TokenBuckets
    sign_in_clients: TokenBuckets
    accepted_keys: RecentValues = field(default_factory=RecentValues)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        lockout = settings.sign_in_lockout_seconds
        return cls(
            api_clients=TokenBuckets.per_window(
                settings.auth_failure_limit, settings.auth_failure_window_seconds, lockout=True
            ),
            accounts=TokenBuckets.per_window(settings.sign_in_failure_limit, lockout, lockout=True),
            sign_in_clients=TokenBuckets.per_window(
                settings.sign_in_client_failure_limit, lockout, lockout=True
            ),
        )


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
    auth_limits: AuthLimits

    def close(self) -> None:
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
        base_url=public_base_url(settings),
        inbox_broker=broker,
        lease=Lease(database, settings),
    )
    jobs = JobEngine(build_huey(settings), context)
    # Every unit of work's outbox reaches the queue through the job engine.
    database.dispatcher = jobs
    return Runtime(
        settings=settings,
        secret=secret,
        database=database,
        cipher=KeyCipher.from_secret(secret),
        config_cipher=config_cipher,
        http=http,
        outbound=outbound,
        unsubscribe_key=context.unsubscribe_key,
        inbox_broker=broker,
        jobs=jobs,
        auth_limits=AuthLimits.from_settings(settings),
    )
