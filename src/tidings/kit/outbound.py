"""Outbound connections whose target comes from input: refused when aimed inward.

Every connection Tidings opens to an address an API caller chose (a provider's base URL, a
webhook, fetch-data, an SMTP host) goes through an `OutboundGuard`. The guard resolves the
host itself, refuses loopback, private, link-local, unique-local, multicast, unspecified and
reserved addresses (and IPv6 forms that embed such an IPv4 address: v4-mapped, 6to4, NAT64),
and the connection is then opened to the very address it checked, so a DNS answer that
changes between the check and the connect (rebinding) cannot reach anything else.

An operator allows internal targets explicitly with `TIDINGS_OUTBOUND_ALLOW`: a comma-separated
list of host names, IP addresses and CIDR ranges, each optionally with a port (`mta.internal:25`,
`10.0.0.0/8`, `[fd00::1]:8080`). A host name entry allows that name whatever it resolves to.

`OutboundClient` is the `httpx.Client` built on the guard (no redirects, no proxy from the
environment); `OutboundGuard.connect` opens a guarded socket for other protocols (SMTP).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from tidings.kit.allowances import SETTING, Allowance, IPAddress, normal_host, parse_allowances

Resolver = Callable[[str, int], Sequence[str]]
"""Resolves a host name and port to the IP addresses to connect to, in order."""

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefused(Exception):
    """A target that is internal (or not http/https) and not allowed by TIDINGS_OUTBOUND_ALLOW.

    Retrying cannot help: callers treat it as permanent.
    """


def internal_kind(address: IPAddress) -> str | None:
    """What makes an address internal (e.g. "loopback"), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            kind = internal_kind(embedded)
            return f"{kind} (inside the IPv6 address {address})" if kind else None
        if address.is_site_local:
            return "site-local"
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    ):
        if flag:
            return kind
    return None


def literal_addresses(host: str) -> list[IPAddress] | None:
    """The addresses a host stands for without asking DNS, or None for a name to resolve.

    Numeric spellings are parsed as the system's resolver parses them (so `127.1`,
    `2130706433`, `0x7f000001` and `017700000001` are all 127.0.0.1), and `localhost` and
    `*.localhost` are loopback (RFC 6761).
    """
    host = normal_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return _unique(str(info[4][0]) for info in infos)


def system_resolver(host: str, port: int) -> list[str]:
    """The system resolver's addresses for host and port, in its order."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _unique(addresses: Iterable[str]) -> list[IPAddress]:
    result: list[IPAddress] = []
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])
        if address not in result:
            result.append(address)
    return result


class OutboundGuard:
    """Checks targets against the internal ranges and the operator's allowances."""

    def __init__(
        self, allowances: Iterable[Allowance] = (), resolver: Resolver = system_resolver
    ) -> None:
        self.allowances = tuple(allowances)
        self.resolver = resolver

    @classmethod
    def from_setting(cls, setting: str, resolver: Resolver = system_resolver) -> OutboundGuard:
        return cls(parse_allowances(setting), resolver)

    def check_url(self, url: str) -> None:
        """Refuse a literal URL that can only be internal (save-time check, no DNS).

        A host name other than localhost is checked when the request is made.
        """
        host, port = url_target(url)
        self.check_literal(host, port)

    def check_literal(self, host: str, port: int) -> None:
        """Refuse a host that is an internal address by spelling alone (no DNS)."""
        addresses = literal_addresses(host)
        if addresses is not None:
            self._check(host, port, addresses)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses to connect to; OutboundRefused if any is refused."""
        addresses = literal_addresses(host)
        if addresses is None:
            addresses = _unique(self.resolver(normal_host(host), port))
        self._check(host, port, addresses)
        return addresses

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A TCP connection to a checked address of host (for protocols other than HTTP)."""
        error: OSError | None = None
        for address in self.resolve(host, port):
            try:
                return socket.create_connection((str(address), port), timeout)
            except OSError as exc:
                error = exc
        raise error or OSError(f"{host} has no address")

    def _check(self, host: str, port: int, addresses: Sequence[IPAddress]) -> None:
        name = normal_host(host)
        if any(allowance.allows(name, None, port) for allowance in self.allowances):
            return
        if not addresses:
            raise OutboundRefused(f"{host} has no address")
        for address in addresses:
            kind = internal_kind(address)
            if kind is None or any(
                allowance.allows(name, address, port) for allowance in self.allowances
            ):
                continue
            shown = f"[{address}]" if address.version == 6 else str(address)
            where = host if _same_address(host, address) else f"{host} ({address})"
            raise OutboundRefused(
                f"{where} is an internal address ({kind}), and Tidings does not connect to "
                "loopback, private, link-local or other internal addresses unless the operator "
                f"allows them: to allow this target, add {shown}:{port} (or its host name or "
                f"CIDR range) to {SETTING}"
            )


def _same_address(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(normal_host(host)) == address
    except ValueError:
        return False


def url_target(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; OutboundRefused for any other URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefused(f"{url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise OutboundRefused(f"{url!r} is not an http or https URL with a host")
    return parsed.host, parsed.port or _DEFAULT_PORTS[parsed.scheme]


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(self, guard: OutboundGuard, inner: httpcore.NetworkBackend | None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.guard.resolve(host, port)
        except OSError as exc:  # the name did not resolve
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise OutboundRefused("Tidings does not send requests to Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class OutboundTransport(httpx.HTTPTransport):
    """httpx's transport on the guarded backend: the URL keeps its host name, so the Host
    header, TLS server name and certificate check stay on the name, while the TCP connection
    goes to the address the guard checked."""

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        network_backend: httpcore.NetworkBackend | None = None,
        verify: Any = True,
    ) -> None:
        # SSL_CERT_FILE and SSL_CERT_DIR still apply, as they did to the plain client.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=True)
        super().__init__(verify=ssl_context)
        # httpx.HTTPTransport takes no network backend: its pool is replaced by one on the
        # guarded backend, with httpx's default limits.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard, network_backend),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in SCHEMES:
            raise OutboundRefused(f"{request.url} is not an http or https URL")
        return super().handle_request(request)


class OutboundClient(httpx.Client):
    """The `httpx.Client` for every request whose target comes from input.

    Redirects are never followed (a redirect could point anywhere), and proxy settings from
    the environment are ignored (a proxy would do its own, unchecked, resolution).
    """

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        timeout: float = 15.0,
        network_backend: httpcore.NetworkBackend | None = None,
        verify: Any = True,
    ) -> None:
        super().__init__(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=OutboundTransport(guard, network_backend=network_backend, verify=verify),
        )
        self.guard = guard


def guard_of(client: httpx.Client) -> OutboundGuard | None:
    """The guard of an `OutboundClient`; None for a plain client (provider unit tests)."""
    return client.guard if isinstance(client, OutboundClient) else None
