"""Choosing channels and providers for one message.

`routing` is `{method: "single" | "all", channels: [...]}`; entries are channel names,
provider names (which pin that provider) or nested routing objects. With `single`, the first
entry that can be delivered is used; with `all`, every entry that can be.

A channel can be chosen only if:
- the message has content for it (a rendering failure counts as no content),
- its `channels.<name>.if` condition, if any, holds,
- at least one configured provider of the channel can deliver to the recipient: it has the
  address the provider needs (a provider may also have a default address of its own, such as
  a team chat webhook).

A channel that could be chosen but whose address is on the suppression list (`suppressed`,
from `suppression.service.Suppressed`) is skipped like one that cannot: with `single`, the
next entry is tried. When nothing is chosen and a suppressed channel was among those that
could have been, `RoutingResult.suppressed` names them (the message ends SUPPRESSED).

When nothing can be chosen, the reason is NO_PROVIDERS if some channel had an address but no
usable provider, and NO_CHANNELS otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tidings.kit.expression import ExpressionError, compile_expression, truthy
from tidings.provider.base import CHANNELS, channel_address
from tidings.provider.service import ConfiguredProvider


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    providers: list[str]


@dataclass
class RoutingResult:
    routes: list[Route]
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    # The channels skipped because their address is suppressed, in routing order.
    suppressed: list[str] = field(default_factory=list)


def _condition_holds(condition: Any, variables: dict[str, Any]) -> bool:
    try:
        return truthy(compile_expression(str(condition))(variables))
    except ExpressionError:
        return False


def plan_routes(
    routing: dict[str, Any],
    *,
    content_channels: set[str],
    recipient: dict[str, Any],
    providers: list[ConfiguredProvider],
    channel_options: dict[str, dict[str, Any]],
    provider_options: dict[str, dict[str, Any]],
    variables: dict[str, Any],
    http: httpx.Client,
    suppressed: Mapping[str, str] | None = None,
) -> RoutingResult:
    """`suppressed`: the channels whose address is on the suppression list, each with a
    sentence saying so (for the notes)."""
    planner = _Planner(
        content_channels=content_channels,
        recipient=recipient,
        providers=providers,
        channel_options=channel_options,
        provider_options=provider_options,
        variables=variables,
        http=http,
        suppressed=suppressed or {},
    )
    routes = planner.resolve(routing)
    seen: set[str] = set()
    unique = []
    for route in routes:
        if route.channel not in seen:
            seen.add(route.channel)
            unique.append(route)
    if unique:
        return RoutingResult(unique, None, planner.notes, planner.skipped)
    reason = "NO_PROVIDERS" if planner.address_without_provider else "NO_CHANNELS"
    return RoutingResult([], reason, planner.notes, planner.skipped)


@dataclass
class _Planner:
    """One message's routing walk; `notes` says why each entry was not chosen."""

    content_channels: set[str]
    recipient: dict[str, Any]
    providers: list[ConfiguredProvider]
    channel_options: dict[str, dict[str, Any]]
    provider_options: dict[str, dict[str, Any]]
    variables: dict[str, Any]
    http: httpx.Client
    suppressed: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Channels skipped for their suppressed address.
    skipped: list[str] = field(default_factory=list)
    # Some channel had the recipient's address but no usable provider (NO_PROVIDERS).
    address_without_provider: bool = False
    by_name: dict[str, ConfiguredProvider] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {provider.name: provider for provider in self.providers}

    def resolve(self, node: dict[str, Any]) -> list[Route]:
        method = node.get("method", "single")
        chosen: list[Route] = []
        for entry in node.get("channels", []):
            routes = (
                self.resolve(entry) if isinstance(entry, dict) else self.resolve_channel(str(entry))
            )
            if routes and method == "single":
                return routes
            chosen.extend(routes)
        return chosen

    def resolve_channel(self, entry: str) -> list[Route]:
        """A channel name, or a provider name that pins that provider on its channel."""
        pinned = None
        channel = entry
        if entry not in CHANNELS:
            provider = self.by_name.get(entry)
            if provider is None:
                self.notes.append(f"{entry!r} is neither a channel nor a configured provider")
                return []
            channel, pinned = provider.channel, entry
        if channel not in self.content_channels:
            self.notes.append(f"{channel}: no content")
            return []
        condition = self.channel_options.get(channel, {}).get("if")
        if condition is not None and not _condition_holds(condition, self.variables):
            self.notes.append(f"{channel}: skipped by its `if`")
            return []
        names = self.usable_providers(channel, pinned)
        if not names:
            if channel_address(channel, self.recipient):
                self.address_without_provider = True
                self.notes.append(f"{channel}: no provider configured")
            else:
                self.notes.append(f"{channel}: the recipient has no address")
            return []
        if channel in self.suppressed:
            self.notes.append(f"{channel}: {self.suppressed[channel]}")
            if channel not in self.skipped:
                self.skipped.append(channel)
            return []
        return [Route(channel, names)]

    def usable_providers(self, channel: str, pinned: str | None) -> list[str]:
        """The channel's providers, in order, that can deliver to the recipient: the pinned
        one, or the channel's `providers` option, or every configured one."""
        wanted = self.channel_options.get(channel, {}).get("providers")
        names = (
            [pinned]
            if pinned
            else list(wanted)
            if isinstance(wanted, list) and wanted
            else [p.name for p in self.providers if p.channel == channel]
        )
        usable = []
        for name in names:
            provider = self.by_name.get(name)
            if provider is None or provider.channel != channel:
                self.notes.append(f"{channel}: provider {name!r} is not configured")
                continue
            condition = self.provider_options.get(name, {}).get("if")
            if condition is not None and not _condition_holds(condition, self.variables):
                self.notes.append(f"{channel}: provider {name!r} skipped by its `if`")
                continue
            instance = provider.provider_class(provider.config, self.http)
            if not instance.can_deliver(self.recipient):
                self.notes.append(f"{channel}: provider {name!r} has no address for the recipient")
                continue
            usable.append(name)
        return usable
