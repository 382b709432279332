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

When nothing can be chosen, the reason is NO_PROVIDERS if some channel had an address but no
usable provider, and NO_CHANNELS otherwise.
"""

from __future__ import annotations

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
) -> RoutingResult:
    by_name = {provider.name: provider for provider in providers}
    state = {"address_without_provider": False}
    notes: list[str] = []

    def usable_providers(channel: str, pinned: str | None) -> list[str]:
        wanted = channel_options.get(channel, {}).get("providers")
        names = (
            [pinned]
            if pinned
            else list(wanted)
            if isinstance(wanted, list) and wanted
            else [p.name for p in providers if p.channel == channel]
        )
        usable = []
        for name in names:
            provider = by_name.get(name)
            if provider is None or provider.channel != channel:
                notes.append(f"{channel}: provider {name!r} is not configured")
                continue
            condition = provider_options.get(name, {}).get("if")
            if condition is not None and not _condition_holds(condition, variables):
                notes.append(f"{channel}: provider {name!r} skipped by its `if`")
                continue
            instance = provider.provider_class(provider.config, http)
            if not instance.can_deliver(recipient):
                notes.append(f"{channel}: provider {name!r} has no address for the recipient")
                continue
            usable.append(name)
        return usable

    def resolve_channel(entry: str) -> list[Route]:
        pinned = None
        channel = entry
        if entry not in CHANNELS:
            provider = by_name.get(entry)
            if provider is None:
                notes.append(f"{entry!r} is neither a channel nor a configured provider")
                return []
            channel, pinned = provider.channel, entry
        if channel not in content_channels:
            notes.append(f"{channel}: no content")
            return []
        condition = channel_options.get(channel, {}).get("if")
        if condition is not None and not _condition_holds(condition, variables):
            notes.append(f"{channel}: skipped by its `if`")
            return []
        names = usable_providers(channel, pinned)
        if not names:
            if channel_address(channel, recipient):
                state["address_without_provider"] = True
                notes.append(f"{channel}: no provider configured")
            else:
                notes.append(f"{channel}: the recipient has no address")
            return []
        return [Route(channel, names)]

    def resolve(node: dict[str, Any]) -> list[Route]:
        method = node.get("method", "single")
        chosen: list[Route] = []
        for entry in node.get("channels", []):
            routes = resolve(entry) if isinstance(entry, dict) else resolve_channel(str(entry))
            if routes and method == "single":
                return routes
            chosen.extend(routes)
        return chosen

    routes = resolve(routing)
    seen: set[str] = set()
    unique = []
    for route in routes:
        if route.channel not in seen:
            seen.add(route.channel)
            unique.append(route)
    if unique:
        return RoutingResult(unique, None, notes)
    reason = "NO_PROVIDERS" if state["address_without_provider"] else "NO_CHANNELS"
    return RoutingResult([], reason, notes)
