"""The outbound guard: internal targets refused in every spelling, allowances, and the
connection going to the exact address that was checked."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from pytest_httpserver import HTTPServer

from tidings.config import Settings
from tidings.kit.allowances import parse_allowances
from tidings.kit.outbound import OutboundClient, OutboundGuard, OutboundRefused

# Every spelling of an internal address the issue names, and more of the same kind.
INTERNAL_HOSTS = [
    "127.0.0.1",
    "[::1]",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "2130706433",
    "127.1",
    "0x7f000001",
    "017700000001",
    "0.0.0.0",
    "0",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "169.254.169.254",
    "10.0.0.1",
    "10.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fe80::1]",
    "[fec0::1]",
    "[ff02::1]",
    "[2002:7f00:1::]",
    "[64:ff9b::a9fe:a9fe]",
    "[2001::1]",
]

PUBLIC_IP = "93.184.215.14"


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not have been looked up")


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_every_spelling_of_an_internal_address_is_refused_when_saved(host: str) -> None:
    guard = OutboundGuard(resolver=no_dns)
    with pytest.raises(OutboundRefused, match="TIDINGS_OUTBOUND_ALLOW"):
        guard.check_url(f"http://{host}:8080/hook")


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_every_spelling_of_an_internal_address_is_refused_when_requested(host: str) -> None:
    backend = RecordingBackend()
    guard = OutboundGuard(resolver=no_dns)
    with (
        OutboundClient(guard, network_backend=backend) as client,
        pytest.raises(OutboundRefused, match="internal address"),
    ):
        client.get(f"http://{host}:8080/latest/meta-data/")
    assert backend.connected == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "//x/y"]
)
def test_schemes_other_than_http_and_https_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="http or https"):
        OutboundGuard().check_url(url)


def test_a_public_address_and_a_host_name_pass_the_save_time_check() -> None:
    guard = OutboundGuard(resolver=no_dns)
    guard.check_url(f"https://{PUBLIC_IP}/v3/mail/send")
    guard.check_url("https://[2606:4700::1111]/")
    # A name is only looked up when the request is made.
    guard.check_url("https://api.sendgrid.com")


def test_a_name_that_resolves_to_an_internal_address_is_refused_when_requested() -> None:
    backend = RecordingBackend()
    guard = OutboundGuard(resolver=lambda host, port: [PUBLIC_IP, "10.0.0.7"])
    with (
        OutboundClient(guard, network_backend=backend) as client,
        pytest.raises(OutboundRefused, match=r"hooks\.example\.com \(10\.0\.0\.7\)"),
    ):
        client.post("https://hooks.example.com/in", json={})
    assert backend.connected == []


class RecordingBackend(httpcore.NetworkBackend):
    """Records where connections go, and refuses them (no network in these tests)."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.connected.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


def test_dns_rebinding_cannot_change_the_address_connected_to() -> None:
    """The name is resolved once, and the connection goes to the address that was checked,
    even though asking again would now give loopback."""
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    backend = RecordingBackend()
    with (
        OutboundClient(OutboundGuard(resolver=rebinding), network_backend=backend) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("http://rebind.example.com:8080/")
    assert asked == ["rebind.example.com"]
    assert backend.connected == [(PUBLIC_IP, 8080)]


def test_redirects_are_not_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with OutboundClient(OutboundGuard.from_setting("127.0.0.1")) as client:
        response = client.get(f"http://127.0.0.1:{httpserver.port}/")
    assert response.status_code == 302
    assert len(httpserver.log) == 1


def test_an_allowed_address_is_reached_and_only_on_its_port(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    port = httpserver.port
    url = f"http://127.0.0.1:{port}/hook"
    with OutboundClient(OutboundGuard.from_setting(f"127.0.0.1:{port}")) as client:
        assert client.get(url).json() == {"ok": True}
    with (
        OutboundClient(OutboundGuard.from_setting(f"127.0.0.1:{port + 1}")) as client,
        pytest.raises(OutboundRefused),
    ):
        client.get(url)
    with OutboundClient(OutboundGuard.from_setting("127.0.0.0/8")) as client:
        assert client.get(url).status_code == 200


def test_an_allowed_host_name_is_reached_with_its_own_host_header(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    guard = OutboundGuard.from_setting("mta.internal", resolver=lambda host, port: ["127.0.0.1"])
    with OutboundClient(guard) as client:
        response = client.get(f"http://mta.internal:{httpserver.port}/hook")
        assert response.json() == {"ok": True}
        with pytest.raises(OutboundRefused):
            client.get(f"http://other.internal:{httpserver.port}/hook")
    (request, _), *_ = httpserver.log
    assert request.headers["Host"] == f"mta.internal:{httpserver.port}"


@pytest.mark.parametrize(
    ("setting", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 25),
        ("[::1]:8025", "::1", 8025),
        ("::1", "::1", 1),
        ("10.0.0.0/8", "10.2.3.4", 443),
        ("fd00::/8", "fd00::5", 443),
        ("mta.internal:25", "mta.internal", 25),
        ("MTA.Internal.", "mta.internal", 587),
        (" 10.0.0.1 , hooks.internal ", "hooks.internal", 80),
    ],
)
def test_allowances_are_parsed(setting: str, host: str, port: int) -> None:
    guard = OutboundGuard(parse_allowances(setting), resolver=lambda h, p: ["10.0.0.1"])
    assert guard.resolve(host, port)


@pytest.mark.parametrize(
    "setting", ["mta.internal:smtp", "10.0.0.1:0", "[::1", "[::1]x", "bad host", "a..b"]
)
def test_a_malformed_allowance_stops_the_settings_from_loading(setting: str) -> None:
    with pytest.raises(ValueError, match="TIDINGS_OUTBOUND_ALLOW"):
        parse_allowances(setting)
    with pytest.raises(ValidationError, match="TIDINGS_OUTBOUND_ALLOW"):
        Settings(outbound_allow=setting)


def test_the_guarded_socket_for_smtp_refuses_and_allows_like_http() -> None:
    with pytest.raises(OutboundRefused):
        OutboundGuard().connect("2130706433", 25, timeout=5)
    with pytest.raises(OutboundRefused):
        OutboundGuard(resolver=lambda host, port: ["192.168.0.10"]).connect(
            "smtp.example.com", 25, timeout=5
        )


# --- TLS: the connection goes to the checked address, the certificate is checked on the name


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for `good.test` and a client context trusting its issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "good.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("good.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HTTPServer, ssl.SSLContext]]:
    server_context, client_context = _certificate(tmp_path)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)
    server.start()
    try:
        yield server, client_context
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def test_tls_checks_the_certificate_against_the_host_name(
    tls_server: tuple[HTTPServer, ssl.SSLContext],
) -> None:
    server, trusted = tls_server
    server.expect_request("/").respond_with_json({"ok": True})
    guard = OutboundGuard.from_setting("127.0.0.1", resolver=lambda host, port: ["127.0.0.1"])
    with OutboundClient(guard, verify=trusted) as client:
        assert client.get(f"https://good.test:{server.port}/").json() == {"ok": True}
        with pytest.raises(httpx.ConnectError, match="certificate"):
            client.get(f"https://bad.test:{server.port}/")
