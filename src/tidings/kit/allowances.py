"""TIDINGS_OUTBOUND_ALLOW: the internal targets an operator allows, parsed.

Apart from the guard (outbound.py), which brings httpx, so that reading the settings does not.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "TIDINGS_OUTBOUND_ALLOW"
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True, slots=True)
class Allowance:
    """One entry of TIDINGS_OUTBOUND_ALLOW: a host name or a network, and maybe a port."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def allows(self, host: str, address: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        return address is not None and self.network is not None and address in self.network


def parse_allowances(setting: str) -> tuple[Allowance, ...]:
    """The entries of TIDINGS_OUTBOUND_ALLOW; ValueError names an entry that is not valid."""
    return tuple(_allowance(entry.strip()) for entry in setting.split(",") if entry.strip())


def _allowance(entry: str) -> Allowance:
    host, port = entry, None
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{SETTING}: {entry!r} is not [IPv6 address] or [IPv6 address]:port")
        host, port = inside, _port(entry, rest[1:]) if rest else None
    elif entry.count(":") == 1:
        host, _, text = entry.partition(":")
        port = _port(entry, text)
    try:
        return Allowance(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    name = normal_host(host)
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(
            f"{SETTING}: {entry!r} is not a host name, IP address or CIDR range "
            "(with an optional :port), e.g. mta.internal:25 or 10.0.0.0/8"
        )
    return Allowance(host=name, port=port)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{SETTING}: the port of {entry!r} is not a number from 1 to 65535")
    return int(text)


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
