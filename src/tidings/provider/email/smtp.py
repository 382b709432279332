"""SMTP: email through any SMTP server, with STARTTLS, implicit TLS (SSL) and AUTH.

Config: host, port, security (`starttls`, `ssl` or `none`), username and password (optional),
from_email, from_name, reply_to, timeout_seconds, verify_tls.

Errors follow SMTP reply classes: 4xx replies, timeouts and refused connections are
retryable; 5xx replies (such as 550, mailbox unavailable) and authentication failures are
permanent. Once the whole message has gone out after DATA, the server's reply is awaited for
`data_timeout_seconds` (60 s by default, up to the ten minutes RFC 5321 section 4.5.3.2.6
suggests: a consumer thread waits meanwhile); if none comes,
or the connection drops, the outcome is unknown (`UnknownOutcomeError`): the server may have
accepted the message, so it is not sent again. Each provider instance (one per configuration)
keeps its open connections, each reused by the same worker thread for up to ten idle seconds,
and closes them when it is closed. The `Message-ID` is derived from the delivery's
idempotency key, so a resend after a crash carries the same id and a receiving server or
client can recognise it.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import smtplib
import socket
import ssl
import threading
import time
from email.header import Header
from email.utils import formataddr, formatdate
from smtplib import CRLF
from typing import Literal

import httpx
from pydantic import Field, SecretStr

from tidings.kit.outbound import OutboundGuard, OutboundRefused, guard_of
from tidings.provider.base import (
    Delivery,
    OutboundTarget,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    RetryableProviderError,
    SendResult,
    UnknownOutcomeError,
    optional_field,
)
from tidings.provider.registry import register


class SmtpConfig(ProviderConfig):
    host: str = Field(title="Host", description="SMTP server host name.")
    port: int = Field(default=587, title="Port", description="587 (STARTTLS), 465 (SSL), 25.")
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", title="Security", description="How the connection is encrypted."
    )
    username: str | None = optional_field("Username", "AUTH user.")
    password: SecretStr | None = optional_field("Password", "AUTH password.")
    from_email: str = Field(title="From address", description="e.g. notifications@example.com")
    from_name: str | None = optional_field("From name", "Display name.")
    reply_to: str | None = optional_field("Reply-To", "Reply address.")
    timeout_seconds: float = Field(default=15.0, title="Timeout", description="Per operation.")
    data_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600.0,
        title="DATA reply timeout",
        description="How long to wait for the server to accept a message it has received "
        "(RFC 5321 suggests up to 10 minutes; a consumer thread waits meanwhile). Without "
        "an answer the outcome is unknown and the message is not sent again.",
    )
    verify_tls: bool = Field(
        default=True, title="Verify TLS", description="Check the server's certificate."
    )
    ca_certificate: str | None = optional_field(
        "CA certificate",
        "A PEM certificate to trust besides the system's (for a private CA).",
        json_schema_extra={"multiline": True},
    )

    def outbound_targets(self) -> list[OutboundTarget]:
        return [OutboundTarget("host", host=self.host, port=self.port)]


def build_email(config: SmtpConfig, delivery: Delivery) -> bytes:
    """The message as it goes on the wire: text, or text and HTML as alternatives, UTF-8
    bodies in base64, lines ending in CRLF.

    Written out directly rather than through `email.message`, whose generator re-folds every
    header and compiles a regular expression per boundary: that was a sizeable share of a
    send's CPU. Non-ASCII headers are RFC 2047-encoded; line breaks inside a header value
    become spaces, so rendered text cannot add headers; headers are folded only past the
    998 characters RFC 5322 allows (a folded List-Unsubscribe confuses some clients).
    """
    text = str(delivery.content.get("text") or "") or " "
    html = str(delivery.content.get("html") or "")
    lines = [
        f"From: {_address(config.from_name or '', config.from_email)}",
        _header("To", str(delivery.recipient["email"])),
        _header("Subject", str(delivery.content.get("subject", ""))),
    ]
    if config.reply_to:
        lines.append(_header("Reply-To", config.reply_to))
    lines.append(f"Message-ID: {message_id(config, delivery)}")
    lines.append(f"Date: {formatdate(localtime=False)}")
    lines.extend(_header(name, value) for name, value in delivery.headers.items())
    lines.append("MIME-Version: 1.0")
    if not html:
        lines.append(_TEXT_PART)
        return _block(lines) + _base64(text)
    boundary = f"=_{secrets.token_hex(16)}"
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    delimiter = f"--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            _block(lines),
            delimiter,
            _block([_TEXT_PART]),
            _base64(text),
            delimiter,
            _block([_HTML_PART]),
            _base64(html),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


def message_id(config: SmtpConfig, delivery: Delivery) -> str:
    """Derived from the idempotency key: a re-driven send carries the same Message-ID."""
    domain = config.from_email.rpartition("@")[2] or "tidings.local"
    return f"<{delivery.idempotency_key.replace(':', '.')}@{domain}>"


_TEXT_PART = 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64'
_HTML_PART = 'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64'
_MAX_LINE = 998


def _block(lines: list[str]) -> bytes:
    """Header lines and the blank line that ends them."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _base64(content: str) -> bytes:
    """A base64 body in lines of 76 characters (RFC 2045)."""
    return base64.encodebytes(content.encode("utf-8")).replace(b"\n", b"\r\n")


def _header(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        value = " ".join(value.splitlines())
    if value.isascii() and len(name) + 2 + len(value) <= _MAX_LINE:
        return f"{name}: {value}"
    if value.isascii():
        header = Header(value, header_name=name)
        return f"{name}: {header.encode(linesep=CRLF, maxlinelen=_MAX_LINE)}"
    return f"{name}: {Header(value, 'utf-8').encode(linesep=CRLF)}"


@functools.lru_cache(maxsize=64)
def _address(name: str, address: str) -> str:
    """The From header's value; the same for every message of a provider, so kept."""
    return _header("From", formataddr((name, address), charset="utf-8"))[len("From: ") :]


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=config.ca_certificate or None)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Smtp(smtplib.SMTP):
    """smtplib's client, opening its socket through the outbound guard when given one: to an
    address the guard checked, while TLS (STARTTLS or implicit) still checks the certificate
    against the configured host name."""

    def __init__(
        self, outbound: OutboundGuard | None, host: str, port: int, timeout: float
    ) -> None:
        self.outbound = outbound  # before connecting, which the constructor does
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        if self.outbound is None:
            return socket.create_connection((host, port), timeout)
        return self.outbound.connect(host, port, timeout)


class _SmtpSsl(smtplib.SMTP_SSL, _Smtp):
    """Implicit TLS: SMTP_SSL wraps the socket `_Smtp` opened."""

    def __init__(
        self,
        outbound: OutboundGuard | None,
        host: str,
        port: int,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self.outbound = outbound
        smtplib.SMTP_SSL.__init__(self, host, port, timeout=timeout, context=context)


def _connect(config: SmtpConfig, outbound: OutboundGuard | None) -> smtplib.SMTP:
    client: smtplib.SMTP
    if config.security == "ssl":
        client = _SmtpSsl(
            outbound, config.host, config.port, config.timeout_seconds, _tls_context(config)
        )
    else:
        client = _Smtp(outbound, config.host, config.port, config.timeout_seconds)
    try:
        client.ehlo_or_helo_if_needed()
        if config.security == "starttls":
            client.starttls(context=_tls_context(config))
            client.ehlo()
        if config.username:
            password = config.password.get_secret_value() if config.password else ""
            client.login(config.username, password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


# A connection idle for longer than this is closed rather than reused: servers drop idle
# clients, and a send on a dropped connection would fail.
_IDLE_SECONDS = 10.0


class _Connections:
    """A provider instance's open connections, each reused by the thread that opened it.

    Once closed, it keeps nothing: a connection handed back is closed.
    """

    def __init__(self) -> None:
        self._idle: dict[int, tuple[smtplib.SMTP, float]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def checkout(self, config: SmtpConfig, outbound: OutboundGuard | None) -> smtplib.SMTP:
        """This thread's open connection, or a new one."""
        with self._lock:
            entry = self._idle.pop(threading.get_ident(), None)
        if entry is not None:
            client, last_used = entry
            if time.monotonic() - last_used < _IDLE_SECONDS:
                return client
            _close(client)
        return _connect(config, outbound)

    def checkin(self, client: smtplib.SMTP) -> None:
        """Keep the connection for this thread's next send."""
        thread = threading.get_ident()
        with self._lock:
            if self._closed:
                unwanted: smtplib.SMTP | None = client
            else:
                previous = self._idle.pop(thread, None)
                unwanted = previous[0] if previous is not None else None
                self._idle[thread] = (client, time.monotonic())
        if unwanted is not None:
            _close(unwanted)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._idle.values())
            self._idle.clear()
        for client, _ in entries:
            _close(client)


@register
class SmtpProvider(Provider[SmtpConfig]):
    name = "smtp"
    channel = "email"
    display_name = "SMTP"
    docs_url = "https://www.rfc-editor.org/rfc/rfc5321"

    def __init__(self, config: SmtpConfig, http: httpx.Client) -> None:
        super().__init__(config, http)
        self._connections = _Connections()

    def close(self) -> None:
        self._connections.close()

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        if not delivery.recipient.get("email"):
            raise PermanentProviderError("the recipient has no email address")
        message = build_email(config, delivery)
        client = None
        try:
            client = self._connections.checkout(config, guard_of(self.http))
            reply = _transmit(
                client,
                config.from_email,
                str(delivery.recipient["email"]),
                message,
                config.data_timeout_seconds,
            )
        except OutboundRefused as exc:
            raise PermanentProviderError(f"SMTP server not contacted: {exc}") from exc
        except _NoReplyToData as exc:
            if client is not None:
                client.close()
            raise UnknownOutcomeError(
                f"the SMTP server received the message but gave no reply to it ({exc.cause}); "
                "it may have been accepted, so it is not sent again",
                response_excerpt=str(exc.cause),
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentProviderError(
                f"SMTP authentication failed ({exc.smtp_code})",
                response_excerpt=f"{exc.smtp_code} {_text(exc.smtp_error)}",
                status_code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if client is not None:
                self._reset(client)
            raise _reply_error("SMTP error", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentProviderError(f"the SMTP server does not support this: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            if client is not None:
                client.close()
            raise RetryableProviderError(f"SMTP server unreachable or closed: {exc}") from exc
        self._connections.checkin(client)
        return SendResult(
            provider_message_id=message_id(config, delivery),
            response_excerpt=f"accepted; {reply[0]} {_text(reply[1])}",
        )

    def _reset(self, client: smtplib.SMTP) -> None:
        """After a refused message, keep the connection if the server still talks to us."""
        try:
            client.rset()
        except (smtplib.SMTPException, OSError):
            client.close()
            return
        self._connections.checkin(client)


class _NoReplyToData(Exception):
    """The whole message was sent after DATA, and no reply came back."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _transmit(
    client: smtplib.SMTP, sender: str, recipient: str, message: bytes, data_timeout: float
) -> tuple[int, bytes]:
    """MAIL, RCPT and DATA; returns the server's reply to DATA (its acceptance).

    `smtplib.SMTP.data`, but the reply to the message's final "." is awaited for
    `data_timeout`, and its absence raises `_NoReplyToData`: from there on the server may
    have the message, so the failure is not one to retry.
    """
    code, text = client.docmd("mail", f"FROM:{_quoted(sender)}")
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, text, sender)
    code, text = client.docmd("rcpt", f"TO:{_quoted(recipient)}")
    if code not in (250, 251):
        raise smtplib.SMTPResponseException(code, text)
    code, text = client.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    payload = _PERIOD_AT_LINE_START.sub(b"..", message)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    client.send(payload + b".\r\n")
    if client.sock is not None:
        client.sock.settimeout(data_timeout)
    try:
        code, text = client.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _NoReplyToData(exc) from exc
    if client.sock is not None:
        client.sock.settimeout(client.timeout)
    if code != 250:
        raise smtplib.SMTPDataError(code, text)
    return code, text


# smtplib's own period quoting (RFC 5321 section 4.5.2), on a message already in CRLF lines.
_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")


# A bare address, which smtplib's `quoteaddr` would only wrap in angle brackets (after
# running it through the email address parser).
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _quoted(address: str) -> str:
    """`smtplib.quoteaddr`, without the parser for the common bare address."""
    if _BARE_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _reply_error(what: str, code: int, text: bytes | str) -> Exception:
    reason = f"{what}: {code} {_text(text)}"
    if 400 <= code < 500:
        return RetryableProviderError(reason, response_excerpt=reason, status_code=code)
    return PermanentProviderError(reason, response_excerpt=reason, status_code=code)


__all__ = ["SmtpConfig", "SmtpProvider", "build_email", "message_id"]
