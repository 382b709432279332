"""Failed authentications, counted per process: wrong API keys and wrong Studio passwords."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.config import Settings
from tidings.kit.ratelimit import RecentValues, TokenBuckets


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
