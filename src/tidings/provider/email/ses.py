"""Amazon SES: email through the SES v2 API, events through Amazon SNS.

Sending follows https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html:
`POST {base_url}/v2/email/outbound-emails` (base URL `https://email.<region>.amazonaws.com`)
with a JSON body of `FromEmailAddress`, `Destination.ToAddresses`, `ReplyToAddresses`,
`Content.Simple` (`Subject`, `Body.Text`, `Body.Html`, `Headers`), `EmailTags` and
`ConfigurationSetName`, signed with AWS Signature Version 4
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, service `ses`).
SES answers `200 {"MessageId"}`; errors carry `{"message"}` and the `x-amzn-ErrorType`
header. `TooManyRequestsException`, `LimitExceededException` and 5xx are retryable.

The email tag `tidings_message_id` carries the Tidings message id: SES repeats tags as
`mail.tags` in its notifications, so status callbacks can find the message.

SES documents no idempotency key for SendEmail, so `idempotency_key` is not sent.

Status callbacks are SES notifications
(https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html) and, through a
configuration set's SNS destination, SES events
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html),
delivered by Amazon SNS to `POST /callbacks/ses` (`provider/sns.py` checks the envelope):
- `Delivery` → delivered (with `smtpResponse`); `Open` → opened (with `userAgent`);
  `Click` → clicked (with `link`); `Complaint` → complained (with `complaintFeedbackType`);
- `Bounce`: `bounceType` `Permanent` → a hard bounce, `Transient` and `Undetermined` → a
  soft one, with the recipients' `diagnosticCode`;
- `Reject` and `Rendering Failure` → undeliverable; `DeliveryDelay` → intermediate;
  `Send` and others are ignored;
- a notification names its message by `mail.tags.tidings_message_id` and `mail.messageId`
  (the `MessageId` SES answered when sending); SNS's `MessageId` tells one open or click from
  another.
Every SNS message's signature must verify with SNS's certificate, and its `TopicArn` must be
the config's `sns_topic_arn`. A `SubscriptionConfirmation` for that topic is confirmed by
visiting its `SubscribeURL`.

Config: `region`, `access_key_id`, `secret_access_key` (secret), `from_email`, `from_name`,
`reply_to`, `configuration_set`, `base_url`, `sns_topic_arn`, `sns_base_url` (only to
stand in for SNS, e.g. in tests: certificates and subscribe URLs must then be under it).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from httpx_auth import AWS4Auth
from pydantic import Field, SecretStr

from tidings.errors import BadRequest, Forbidden
from tidings.kit import json_input
from tidings.provider import sns
from tidings.provider.base import (
    BaseUrl,
    Bounce,
    Delivery,
    HttpUrl,
    ProviderConfig,
    ProviderError,
    ReportOutcome,
    SendResult,
    StatusCallback,
    StatusReport,
    optional_field,
)
from tidings.provider.callback import json_body, labelled, missing_credential, text
from tidings.provider.email.sender import EmailParts, EmailProvider, SenderConfig, header_list
from tidings.provider.http import accepted_reply, base_url_field, post, present, reply_field
from tidings.provider.registry import register

SERVICE = "ses"
SEND_PATH = "/v2/email/outbound-emails"
RETRYABLE_ERRORS = frozenset({"TooManyRequestsException", "LimitExceededException"})
OUTCOMES = {
    "Delivery": ReportOutcome.DELIVERED,
    "Open": ReportOutcome.OPENED,
    "Click": ReportOutcome.CLICKED,
    "Complaint": ReportOutcome.COMPLAINED,
    "Bounce": ReportOutcome.BOUNCED,
    "Reject": ReportOutcome.UNDELIVERABLE,
    "Rendering Failure": ReportOutcome.UNDELIVERABLE,
    "DeliveryDelay": ReportOutcome.INTERMEDIATE,
}


class SesConfig(SenderConfig):
    region: str = Field(
        title="Region",
        description="The AWS region SES sends from, e.g. eu-west-1.",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
    )
    access_key_id: str = Field(
        title="Access key ID",
        description="An IAM access key allowed ses:SendEmail.",
        min_length=16,
    )
    secret_access_key: SecretStr = Field(
        title="Secret access key", description="The secret of that access key."
    )
    configuration_set: str | None = optional_field(
        "Configuration set",
        "Send with this configuration set (its SNS event destination reports opens and clicks).",
    )
    base_url: BaseUrl | None = base_url_field(
        None, "Overrides https://email.<region>.amazonaws.com when set."
    )
    sns_topic_arn: str | None = optional_field(
        "SNS topic ARN",
        "The topic SES notifications and events are published to; POST "
        "/callbacks/ses accepts SNS messages of this topic only.",
    )
    sns_base_url: HttpUrl | None = optional_field(
        "SNS stand-in base URL",
        "Only to stand in for Amazon SNS (tests): signing certificates and "
        "subscribe URLs must be under this URL instead of an sns.<region>.amazonaws.com host.",
    )

    @property
    def api_base_url(self) -> str:
        return (self.base_url or f"https://email.{self.region}.amazonaws.com").rstrip("/")


def error_reason(response: httpx.Response) -> str | None:
    """SES's error type and `message`."""
    kind = response.headers.get("x-amzn-errortype", "").split(":", 1)[0]
    message = reply_field(response, "message") or reply_field(response, "Message")
    parts = [part for part in (kind, str(message) if message else "") if part]
    return ": ".join(parts) or None


def _throttled(error: ProviderError) -> bool:
    return any(kind in error.reason for kind in RETRYABLE_ERRORS)


@register
class SesProvider(EmailProvider[SesConfig]):
    name = "ses"
    display_name = "Amazon SES"
    docs_url = "https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html"

    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        config = self.config
        body = {
            "Text": {"Data": parts.text, "Charset": "UTF-8"} if parts.text else None,
            "Html": {"Data": parts.html, "Charset": "UTF-8"} if parts.html else None,
        }
        simple = {
            "Subject": {"Data": parts.subject, "Charset": "UTF-8"},
            "Body": present(body),
            **present({"Headers": header_list(delivery.headers)}),
        }
        payload = {
            "FromEmailAddress": config.sender,
            "Destination": {"ToAddresses": [parts.to]},
            "Content": {"Simple": simple},
            "EmailTags": [{"Name": "tidings_message_id", "Value": delivery.message_id}],
            **present(
                {
                    "ReplyToAddresses": [config.reply_to] if config.reply_to else None,
                    "ConfigurationSetName": config.configuration_set,
                }
            ),
        }
        auth = AWS4Auth(
            config.access_key_id,
            config.secret_access_key.get_secret_value(),
            config.region,
            SERVICE,
        )
        response = post(
            self.http,
            "Amazon SES",
            f"{config.api_base_url}{SEND_PATH}",
            error_reason,
            retry_if=_throttled,
            content=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
            auth=auth,
        )
        return accepted_reply(response, "MessageId")

    @classmethod
    def subscription_request(cls, callback: StatusCallback) -> str | None:
        """The topic of an SNS SubscriptionConfirmation."""
        message = _sns_message(callback)
        if message.get("Type") != sns.SUBSCRIPTION_CONFIRMATION:
            return None
        return text(message.get("TopicArn")) or None

    @classmethod
    def confirm_subscription(cls, config: ProviderConfig, callback: StatusCallback) -> None:
        """Confirm a subscription to the config's topic once its signature verifies."""
        ses = _expecting(config, _sns_message(callback))
        message = _sns_message(callback)
        sns.verify(message, callback.http, ses.sns_base_url)
        sns.confirm_subscription(message, callback.http, ses.sns_base_url)

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one SES notification an SNS message carries."""
        message = _sns_message(callback)
        if message.get("Type") != sns.NOTIFICATION:
            return [StatusReport(ReportOutcome.IGNORED)]
        try:
            notification = json_input.loads(text(message.get("Message")))
        except json_input.JSONDecodeError:
            return [StatusReport(ReportOutcome.IGNORED)]
        if not isinstance(notification, dict):
            return [StatusReport(ReportOutcome.IGNORED)]
        return [_report(notification, text(message.get("MessageId")))]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """The SNS signature must verify and the topic be the config's (401/403 otherwise)."""
        message = _sns_message(callback)
        ses = _expecting(config, message)
        sns.verify(message, callback.http, ses.sns_base_url)


def _sns_message(callback: StatusCallback) -> dict[str, Any]:
    return sns.envelope(json_body(callback, sns.SHAPE))


def _expecting(config: ProviderConfig | None, message: dict[str, Any]) -> SesConfig:
    """The SES config, when it names the message's topic (401/403 otherwise)."""
    if not isinstance(config, SesConfig) or not config.sns_topic_arn:
        raise missing_credential(
            "Amazon SES",
            "sns_topic_arn",
            "Set it to the ARN of the SNS topic SES publishes to.",
        )
    if message.get("TopicArn") != config.sns_topic_arn:
        raise Forbidden(
            f"The SNS message comes from the topic {text(message.get('TopicArn'))!r}, not the "
            "Amazon SES provider's sns_topic_arn.",
            code="unexpected_topic",
            field="TopicArn",
        )
    return config


def _report(notification: dict[str, Any], sns_message_id: str) -> StatusReport:
    kind = text(notification.get("notificationType") or notification.get("eventType"))
    outcome = OUTCOMES.get(kind)
    if outcome is None:
        return StatusReport(ReportOutcome.IGNORED)
    mail = notification.get("mail")
    if not isinstance(mail, dict):
        raise BadRequest(
            "The SES notification has no mail object.", code="invalid_request", field="mail"
        )
    tags = mail.get("tags")
    tagged = tags.get("tidings_message_id") if isinstance(tags, dict) else None
    tidings_id = tagged[0] if isinstance(tagged, list) and tagged else None
    details = notification.get(_detail_key(kind))
    facts_of = details if isinstance(details, dict) else {}
    detail, facts, bounce = _words(kind, facts_of)
    return StatusReport(
        outcome,
        provider_message_id=text(mail.get("messageId")) or None,
        tidings_message_id=tidings_id if isinstance(tidings_id, str) else None,
        status=kind,
        detail=detail,
        raw=notification,
        bounce=bounce,
        event_id=sns_message_id or None,
        facts=facts,
    )


def _detail_key(kind: str) -> str:
    """The notification's object about the event: `bounce`, `deliveryDelay`, `failure`, …"""
    if kind == "Rendering Failure":
        return "failure"
    return kind[0].lower() + kind[1:]


def _words(kind: str, details: dict[str, Any]) -> tuple[str, dict[str, str], Bounce | None]:
    """The history's detail, facts and bounce kind of one SES event."""
    if kind == "Delivery":
        response = text(details.get("smtpResponse"))
        return labelled("Amazon SES delivered", response), {}, None
    if kind == "Open":
        agent = text(details.get("userAgent"))
        return f"Amazon SES open: {agent}", {"user_agent": agent}, None
    if kind == "Click":
        link = text(details.get("link"))
        return (
            f"Amazon SES click: {link}",
            {"url": link, "user_agent": text(details.get("userAgent"))},
            None,
        )
    if kind == "Complaint":
        feedback = text(details.get("complaintFeedbackType")) or "not given"
        return f"Amazon SES complaint: {feedback}", {"feedback_type": feedback}, None
    if kind == "Bounce":
        bounce_type = text(details.get("bounceType"))
        sub_type = text(details.get("bounceSubType"))
        recipients = details.get("bouncedRecipients")
        codes = [
            text(r.get("diagnosticCode") or r.get("status"))
            for r in (recipients if isinstance(recipients, list) else [])
            if isinstance(r, dict)
        ]
        diagnostic = "; ".join(code for code in codes if code)
        detail = f"Amazon SES bounce ({bounce_type}, {sub_type}): {diagnostic or 'no diagnostic'}"
        bounce = Bounce.HARD if bounce_type == "Permanent" else Bounce.SOFT
        return detail, {"diagnostic": diagnostic}, bounce
    reason = text(details.get("reason") or details.get("errorMessage") or details.get("delayType"))
    return f"Amazon SES {kind}: {reason or 'no reason given'}", {}, None
