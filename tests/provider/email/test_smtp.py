"""SMTP against a real aiosmtpd server on loopback: plain, STARTTLS, implicit TLS and AUTH."""

from __future__ import annotations

import datetime
import ssl
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.smtp_sink import SinkHandler, _free_port
from tidings.provider.base import Delivery, PermanentProviderError, RetryableProviderError
from tidings.provider.email.smtp import SmtpConfig, SmtpProvider


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem.decode()


def _server_context(certificate: tuple[Path, Path, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


class Authenticator:
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.attempts.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "correct horse"), handled=False)


class AuthController(Controller):
    def __init__(
        self,
        handler: Any,
        *,
        starttls: ssl.SSLContext | None,
        authenticator: Authenticator,
        **kwargs: Any,
    ) -> None:
        self.starttls_context = starttls
        self.authenticator = authenticator
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        # With implicit TLS (ssl_context), aiosmtpd's own "require TLS for AUTH" check does not
        # see the TLS layer; the whole connection is encrypted, so the check is turned off.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                self.handler,
                tls_context=self.starttls_context,
                require_starttls=self.starttls_context is not None,
                authenticator=self.authenticator,
                auth_require_tls=self.starttls_context is not None,
                auth_required=True,
                auth_exclude_mechanism=["LOGIN"],
            )


@pytest.fixture
def handler() -> SinkHandler:
    return SinkHandler()


def _delivery(**content: Any) -> Delivery:
    return Delivery(
        message_id="msg_1",
        idempotency_key="msg_1:email:smtp",
        channel="email",
        recipient={"email": "ada@example.org"},
        content={"subject": "Hello", "text": "Plain body", "html": "<p>HTML body</p>", **content},
        headers={"List-Unsubscribe": "<https://example.org/u/1>"},
    )


def _provider(**config: Any) -> tuple[SmtpProvider, httpx.Client]:
    http = httpx.Client()
    return SmtpProvider(
        SmtpConfig(from_email="n@example.org", from_name="Tidings", **config), http
    ), http


def test_plain_smtp_delivers_a_multipart_message(handler: SinkHandler) -> None:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    provider, http = _provider(host="127.0.0.1", port=port, security="none")
    try:
        result = provider.send(_delivery())
        provider.send(_delivery(subject="Second"))
    finally:
        http.close()
        provider.close()
        controller.stop()
    first, second = handler.messages
    assert handler.envelopes[0] == ("n@example.org", ["ada@example.org"])
    assert first["From"] == "Tidings <n@example.org>"
    assert first["Subject"] == "Hello"
    assert first["List-Unsubscribe"] == "<https://example.org/u/1>"
    assert first["Message-ID"] == "<msg_1.email.smtp@example.org>"
    assert result.provider_message_id == "<msg_1.email.smtp@example.org>"
    assert "250" in result.response_excerpt
    assert first.get_body(("plain",)).get_content().strip() == "Plain body"  # type: ignore[union-attr]
    assert first.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"  # type: ignore[union-attr]
    assert second["Subject"] == "Second"


def test_starttls_with_auth(handler: SinkHandler, certificate: tuple[Path, Path, str]) -> None:
    port = _free_port()
    authenticator = Authenticator()
    controller = AuthController(
        handler,
        starttls=_server_context(certificate),
        authenticator=authenticator,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
    )
    controller.start()
    provider, http = _provider(
        host="localhost",
        port=port,
        security="starttls",
        username="mailer",
        password="correct horse",
        ca_certificate=certificate[2],
    )
    try:
        provider.send(_delivery())
    finally:
        http.close()
        provider.close()
        controller.stop()
    assert authenticator.attempts == [("mailer", "correct horse")]
    assert len(handler.messages) == 1


# aiosmtpd's implicit-TLS controller leaves its own start-up probe connection unclosed on the
# server side; that warning is about the test server, not about Tidings.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_implicit_tls_with_auth(handler: SinkHandler, certificate: tuple[Path, Path, str]) -> None:
    port = _free_port()
    authenticator = Authenticator()
    controller = AuthController(
        handler,
        starttls=None,
        authenticator=authenticator,
        hostname="127.0.0.1",
        port=port,
        ssl_context=_server_context(certificate),
        server_hostname="localhost",
    )
    controller.start()
    provider, http = _provider(
        host="localhost",
        port=port,
        security="ssl",
        username="mailer",
        password="correct horse",
        ca_certificate=certificate[2],
    )
    try:
        provider.send(_delivery())
    finally:
        http.close()
        provider.close()
        controller.stop()
    assert len(handler.messages) == 1


def test_wrong_password_is_permanent_and_secret_free(
    handler: SinkHandler, certificate: tuple[Path, Path, str]
) -> None:
    port = _free_port()
    controller = AuthController(
        handler,
        starttls=_server_context(certificate),
        authenticator=Authenticator(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
    )
    controller.start()
    provider, http = _provider(
        host="localhost",
        port=port,
        security="starttls",
        username="mailer",
        password="wrong-secret-value",
        ca_certificate=certificate[2],
    )
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.send(_delivery())
    finally:
        http.close()
        provider.close()
        controller.stop()
    assert "535" in caught.value.reason
    assert "wrong-secret-value" not in str(caught.value) + caught.value.response_excerpt
    assert handler.messages == []


def test_untrusted_certificate_is_refused(
    handler: SinkHandler, certificate: tuple[Path, Path, str]
) -> None:
    port = _free_port()
    controller = AuthController(
        handler,
        starttls=_server_context(certificate),
        authenticator=Authenticator(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
    )
    controller.start()
    provider, http = _provider(host="localhost", port=port, security="starttls")
    try:
        with pytest.raises(RetryableProviderError, match="CERTIFICATE_VERIFY_FAILED"):
            provider.send(_delivery())
    finally:
        http.close()
        provider.close()
        controller.stop()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 Mailbox unavailable", PermanentProviderError),
        ("451 4.3.0 Try again later", RetryableProviderError),
    ],
)
def test_server_replies_map_to_permanent_and_retryable(
    handler: SinkHandler, reply: str, error: type[Exception]
) -> None:
    handler.reply = reply
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    provider, http = _provider(host="127.0.0.1", port=port, security="none")
    try:
        with pytest.raises(error) as caught:
            provider.send(_delivery())
    finally:
        http.close()
        provider.close()
        controller.stop()
    assert reply.split()[0] in str(caught.value)


def test_refused_connection_is_retryable() -> None:
    provider, http = _provider(host="127.0.0.1", port=_free_port(), security="none")
    try:
        with pytest.raises(RetryableProviderError):
            provider.send(_delivery())
    finally:
        http.close()


def test_password_is_masked() -> None:
    config = SmtpConfig(host="h", from_email="n@example.org", password="hunter2")
    assert "hunter2" not in config.model_dump_json()
    assert "hunter2" not in repr(config)


def test_non_ascii_subject_names_and_bodies_arrive_intact(handler: SinkHandler) -> None:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    http = httpx.Client()
    provider = SmtpProvider(
        SmtpConfig(
            host="127.0.0.1",
            port=port,
            security="none",
            from_email="n@example.org",
            from_name="Zoë",
        ),
        http,
    )
    try:
        provider.send(
            _delivery(
                subject="Café ✓ commande n°7",
                text="Bonjour Zoë, voilà.",
                html="<p>Grüße, 日本</p>",
            )
        )
    finally:
        http.close()
        provider.close()
        controller.stop()
    (email,) = handler.messages
    assert email["Subject"] == "Café ✓ commande n°7"
    assert email["From"] == "Zoë <n@example.org>"
    assert email["MIME-Version"] == "1.0"
    assert len(email.get_all("MIME-Version")) == 1
    assert email.get_body(("plain",)).get_content().strip() == "Bonjour Zoë, voilà."  # type: ignore[union-attr]
    assert email.get_body(("html",)).get_content().strip() == "<p>Grüße, 日本</p>"  # type: ignore[union-attr]
    assert email["Date"] is not None


def test_line_breaks_in_a_subject_add_no_header_and_long_headers_fold(
    handler: SinkHandler,
) -> None:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    provider, http = _provider(host="127.0.0.1", port=port, security="none")
    long_subject = " ".join(f"word{index}" for index in range(250))
    try:
        provider.send(_delivery(subject="Order 7\r\nBcc: eve@example.org", html=""))
        provider.send(_delivery(subject=long_subject, text="Line one\nLine two"))
    finally:
        http.close()
        provider.close()
        controller.stop()
    injected, long = handler.messages
    assert injected["Subject"] == "Order 7 Bcc: eve@example.org"
    assert injected["Bcc"] is None
    assert handler.envelopes[0] == ("n@example.org", ["ada@example.org"])
    assert injected.get_content_type() == "text/plain"
    assert injected.get_content().strip() == "Plain body"
    assert long["Subject"] == long_subject
    assert long.get_body(("plain",)).get_content().splitlines() == ["Line one", "Line two"]  # type: ignore[union-attr]
