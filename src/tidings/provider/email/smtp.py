"""SMTP: email through any SMTP server, with STARTTLS, implicit TLS (SSL) and AUTH.

Config: host, port, security (`starttls`, `ssl` or `none`), username and password (optional),
from_email, from_name, reply_to, timeout_seconds, verify_tls.

Errors follow SMTP reply classes: 4xx replies, timeouts and refused connections are
retryable; 5xx replies (such as 550, mailbox unavailable) and authentication failures are
permanent. The `Message-ID` is derived from the delivery's idempotency key, so a resend after
a crash carries the same id and a receiving server or client can recognise it.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr
from typing import Literal

from pydantic import Field, SecretStr

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    RetryableProviderError,
    SendResult,
)
from tidings.provider.registry import register


class SmtpConfig(ProviderConfig):
    host: str = Field(title="Host", description="SMTP server host name.")
    port: int = Field(default=587, title="Port", description="587 (STARTTLS), 465 (SSL), 25.")
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", title="Security", description="How the connection is encrypted."
    )
    username: str | None = Field(default=None, title="Username", description="AUTH user.")
    password: SecretStr | None = Field(default=None, title="Password", description="AUTH password.")
    from_email: str = Field(title="From address", description="e.g. notifications@example.com")
    from_name: str | None = Field(default=None, title="From name", description="Display name.")
    reply_to: str | None = Field(default=None, title="Reply-To", description="Reply address.")
    timeout_seconds: float = Field(default=15.0, title="Timeout", description="Per operation.")
    verify_tls: bool = Field(
        default=True, title="Verify TLS", description="Check the server's certificate."
    )


def build_email(config: SmtpConfig, delivery: Delivery) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((config.from_name or "", config.from_email))
    message["To"] = str(delivery.recipient["email"])
    message["Subject"] = str(delivery.content.get("subject", ""))
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    domain = config.from_email.rpartition("@")[2] or "tidings.local"
    message["Message-ID"] = f"<{delivery.idempotency_key.replace(':', '.')}@{domain}>"
    for name, value in delivery.headers.items():
        message[name] = value
    text = str(delivery.content.get("text") or "")
    html = str(delivery.content.get("html") or "")
    message.set_content(text or " ")
    if html:
        message.add_alternative(html, subtype="html")
    return message


@register
class SmtpProvider(Provider):
    name = "smtp"
    channel = "email"
    display_name = "SMTP"
    docs_url = "https://www.rfc-editor.org/rfc/rfc5321"
    config_model = SmtpConfig

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        assert isinstance(config, SmtpConfig)
        if not delivery.recipient.get("email"):
            raise PermanentProviderError("the recipient has no email address")
        message = build_email(config, delivery)
        context = ssl.create_default_context()
        if not config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            client: smtplib.SMTP
            if config.security == "ssl":
                client = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout_seconds, context=context
                )
            else:
                client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
            with client:
                if config.security == "starttls":
                    client.starttls(context=context)
                if config.username:
                    password = config.password.get_secret_value() if config.password else ""
                    client.login(config.username, password)
                refused = client.send_message(message)
                reply = client.noop()
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentProviderError(
                f"SMTP authentication failed ({exc.smtp_code})",
                response_excerpt=f"{exc.smtp_code} {_text(exc.smtp_error)}",
                status_code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _reply_error("recipient refused", code, text) from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("SMTP error", exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentProviderError(f"the SMTP server does not support this: {exc}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise RetryableProviderError(f"SMTP server unreachable or closed: {exc}") from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _reply_error("recipient refused", code, text)
        return SendResult(
            provider_message_id=message["Message-ID"],
            response_excerpt=f"accepted; {reply[0]} {_text(reply[1])}",
        )


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _reply_error(what: str, code: int, text: bytes | str) -> Exception:
    reason = f"{what}: {code} {_text(text)}"
    if 400 <= code < 500:
        return RetryableProviderError(reason, response_excerpt=reason, status_code=code)
    return PermanentProviderError(reason, response_excerpt=reason, status_code=code)


__all__ = ["SmtpConfig", "SmtpProvider", "build_email"]
