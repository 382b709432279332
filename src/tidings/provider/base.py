"""The provider protocol.

A provider delivers one rendered message on one channel through one vendor. It is built once
per environment and configuration from its immutable config and an injected `httpx.Client`
(`provider.service.ConfiguredProviders.instance`), and kept until that configuration changes
or the process stops, when `close()` releases what it holds between sends (SMTP connections,
an access token). Sends on one instance run in several threads at once. A send either returns
a `SendResult` or raises one of the errors below. It never returns a bare bool.

- `RetryableProviderError`: timeouts, connection errors, HTTP 429 and 5xx. The message is tried
  again with exponential backoff (honouring `retry_after` when the vendor gives one), and after
  the failover window the next provider of the channel takes over.
- `PermanentProviderError`: any other refusal (bad address, bad credentials, 4xx). Retrying
  cannot help; the next provider takes over, or the message ends UNDELIVERABLE with `reason`.
- `UnknownOutcomeError`: the whole message reached the vendor, but its answer did not come
  back (SMTP: no reply to the end of DATA in time). It may have been sent: resending could
  deliver it twice, so it is neither retried nor failed over; the delivery is recorded
  `unknown` with an UNKNOWN_OUTCOME history entry.

Both carry `reason`, the vendor's own words where it gave any, and `response_excerpt`, a short
excerpt of the vendor's reply for the message history. Secrets never appear in either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar, get_args, get_origin

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo

EXCERPT_LIMIT = 500

CHANNELS = ("email", "sms", "push", "chat", "webhook", "inbox")


class ProviderError(Exception):
    def __init__(
        self, reason: str, *, response_excerpt: str = "", status_code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response_excerpt = response_excerpt[:EXCERPT_LIMIT]
        self.status_code = status_code


class RetryableProviderError(ProviderError):
    def __init__(
        self,
        reason: str,
        *,
        response_excerpt: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, response_excerpt=response_excerpt, status_code=status_code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    pass


class UnknownOutcomeError(ProviderError):
    """The vendor received the message and did not answer: sent or not, nobody knows."""


def retryable_first(errors: list[ProviderError]) -> ProviderError:
    """The error for a send whose every part failed: the first retryable one, so that the
    message is tried again, else the first."""
    retryable = [error for error in errors if isinstance(error, RetryableProviderError)]
    return (retryable or errors)[0]


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


def _secret_http_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


class _Outbound:
    """Marks a config field whose URL Tidings sends requests to."""


OUTBOUND = _Outbound()

HttpUrl = Annotated[str, AfterValidator(_http_url), OUTBOUND]
"""A config field holding an http(s) URL that Tidings sends requests to."""

BaseUrl = Annotated[str, AfterValidator(lambda value: _http_url(value).rstrip("/")), OUTBOUND]
"""A vendor API base URL, kept without a trailing slash."""

SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url), OUTBOUND]
"""An http(s) URL that is itself a credential (a chat webhook), masked like a secret."""


@dataclass(frozen=True, slots=True)
class OutboundTarget:
    """A server a provider config makes Tidings connect to: an http(s) `url`, or a `host`
    and `port` (SMTP). `field` names the config field it came from."""

    field: str
    url: str | None = None
    host: str = ""
    port: int = 0


def _is_outbound(field: FieldInfo) -> bool:
    def marked(annotation: Any) -> bool:
        if get_origin(annotation) is Annotated and OUTBOUND in annotation.__metadata__:
            return True
        return any(marked(argument) for argument in get_args(annotation))

    return OUTBOUND in field.metadata or marked(field.annotation)


class ProviderConfig(BaseModel):
    """Base of every provider's config model. Secrets are `SecretStr`, masked everywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    def outbound_targets(self) -> list[OutboundTarget]:
        """Every server this config makes Tidings connect to, checked by the outbound guard
        when the config is saved: by default the values of its `HttpUrl`, `BaseUrl` and
        `SecretHttpUrl` fields. A provider with other targets (a host, a URL inside a
        credential) extends this."""
        targets = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None and _is_outbound(info):
                url = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                targets.append(OutboundTarget(name, url=url))
        return targets


def optional_field(title: str, description: str, **constraints: Any) -> Any:
    """A config field the provider can do without: None when left out. Studio's provider form
    shows its `title` and `description`; `constraints` are the field's other `Field`
    arguments (a `pattern`, a length)."""
    return Field(default=None, title=title, description=description, **constraints)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message, rendered for one channel, to one recipient.

    `recipient` is the profile with the `to` fields laid over it: `email`, `phone_number`,
    push tokens (`firebaseToken`, `expo`), chat addresses (`slack`, `discord`, `ms_teams`),
    `webhook`, and anything else the profile holds.

    `content` is the rendered channel content:
    - email: `subject`, `html`, `text`
    - sms and chat: `text`
    - push: `title`, `body`, `data`
    - webhook: `body` (any JSON value)
    - inbox: `title`, `body`, `action_url`

    `idempotency_key` is stable across retries of the same message on the same provider; pass
    it to vendors that de-duplicate on one.
    """

    message_id: str
    idempotency_key: str
    channel: str
    recipient: dict[str, Any]
    content: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def nonempty_str(value: Any) -> str | None:
    """`value` when it is a non-empty string (a profile's or a payload's), else None."""
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str | None
    response_excerpt: str = ""


class ReportOutcome(StrEnum):
    """What a vendor's status report means for a delivery (`callback.service` applies it;
    `models.message.FEEDBACK_LADDER` orders them)."""

    DELIVERED = "delivered"
    """The vendor delivered it: the delivery and its message become DELIVERED."""
    OPENED = "opened"
    """The recipient opened it (an engagement event: recorded each time, counted)."""
    CLICKED = "clicked"
    """The recipient clicked a link in it (recorded each time, with the URL)."""
    BOUNCED = "bounced"
    """The recipient's server refused it, at once or after accepting it: `bounce` says hard
    (permanent: the address will not take mail) or soft (transient)."""
    COMPLAINED = "complained"
    """The recipient reported it as spam."""
    UNDELIVERABLE = "undeliverable"
    """The vendor gave up without a bounce (dropped, rejected, expired, failed)."""
    INTERMEDIATE = "intermediate"
    """A step on the way (queued, deferred, …): recorded once in the history."""
    IGNORED = "ignored"
    """Not about this message's delivery, or not an event at all: counted, nothing else."""


class Bounce(StrEnum):
    HARD = "hard"
    """Permanent: the address does not exist or refuses mail for good."""
    SOFT = "soft"
    """Transient: a full mailbox, a message too large, a server that refused it for now."""


@dataclass(frozen=True, slots=True)
class StatusCallback:
    """A vendor's delivery-status callback as Tidings received it.

    `url` is the URL the vendor requested, as seen through forwarding proxies; `headers` has
    lower-case names; `query` is the URL's query. `http` is the outbound client, for the
    vendors whose signatures are checked against a certificate fetched from them (Amazon
    SNS); `now` is the current time, for signatures with a timestamp.
    """

    body: bytes
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    http: httpx.Client | None = None
    now: datetime | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One status event of a callback, in Tidings' terms.

    The delivery is found by `tidings_message_id` (the Tidings message id, when the vendor
    echoes it back) on this provider's channel, or else by `provider_message_id` (the id
    recorded when sending), which also fills a delivery that has none yet. `status` is the
    vendor's own name for it, recorded with an INTERMEDIATE report; `detail` is the history
    entry's (and a failure's) text, in the vendor's words; `raw` is the event, quoted in the
    history. `bounce` says hard or soft for a BOUNCED report. `event_id` is the vendor's id
    of this event, when it gives one: a repeat of an engagement event with the same id is a
    duplicate, another id is another open or click. `facts` are the event's particulars, kept
    on its history entry: `url` for a click, `user_agent` for an open, `feedback_type` for a
    complaint, `diagnostic` for a bounce. `machine` says whether an open or click was a
    machine's rather than a person's, when that is known (Tidings' own tracking,
    engagement/machine.py): a machine's is recorded with `machine: true` and moves nothing.
    """

    outcome: ReportOutcome
    provider_message_id: str | None = None
    tidings_message_id: str | None = None
    status: str = ""
    detail: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    bounce: Bounce | None = None
    event_id: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    machine: bool | None = None


ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


class Provider(ABC, Generic[ConfigT]):
    """Base class of every provider. Subclasses set the class attributes and `send`; most
    extend their channel's base instead (`EmailProvider`, `SmsProvider`, `PushProvider`,
    `ChatProvider`), whose `send` refuses a delivery that lacks what the channel needs and
    hands the rest to the vendor's own method.

    A subclass names its config model once, as the type argument (`Provider[SlackConfig]`):
    that becomes `config_model`, which validates stored configs, and the type of
    `self.config`.

    A provider whose vendor reports delivery statuses to Tidings also implements
    `parse_status_callback` and `verify_status_callback`; `callback.service` applies what
    they return.
    """

    name: ClassVar[str]
    channel: ClassVar[str]
    display_name: ClassVar[str]
    docs_url: ClassVar[str] = ""
    config_model: ClassVar[type[ProviderConfig]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            for argument in get_args(base):
                if isinstance(argument, type) and issubclass(argument, ProviderConfig):
                    cls.config_model = argument

    def __init__(self, config: ConfigT, http: httpx.Client) -> None:
        if not isinstance(config, self.config_model):
            raise TypeError(f"{self.name} takes a {self.config_model.__name__}")
        self.config = config
        self.http = http

    def address(self, recipient: dict[str, Any]) -> Any:
        """Where this provider would send for the recipient (an address, push tokens, a chat
        target), or something falsy when it has none. A provider that reads the recipient
        its own way overrides this and sends to what it returns."""
        return channel_address(self.channel, recipient)

    def can_deliver(self, recipient: dict[str, Any]) -> bool:
        """Whether the recipient has the address this provider needs."""
        return bool(self.address(recipient))

    @abstractmethod
    def send(self, delivery: Delivery) -> SendResult:
        """Deliver, or raise RetryableProviderError / PermanentProviderError."""

    def close(self) -> None:
        """Release what the instance keeps between sends; called when its configuration
        changes and at shutdown. A send may still be running on it, or start on it later:
        that send must still work, and leave no connection open."""
        return None

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The callback's events, in the order the vendor sent them, one report each
        (IGNORED for those Tidings does not track). Raises `tidings.errors.BadRequest` when
        the request is not what the vendor sends. Called before the signature is checked:
        the signing key is found through the delivery the callback names."""
        raise NotImplementedError(f"{cls.name} takes no status callbacks")

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """Check the vendor's signature on the callback with the provider's config in the
        environment of a delivery it names (None when that environment has none). Raises
        `tidings.errors.Unauthorized` or `Forbidden` when it does not verify."""
        raise NotImplementedError(f"{cls.name} takes no status callbacks")

    @classmethod
    def subscription_request(cls, callback: StatusCallback) -> str | None:
        """For a vendor that asks before it sends status callbacks (Amazon SNS's subscription
        confirmation): what the callback asks to subscribe to (a topic), else None. Such a
        callback names no message; `confirm_subscription` is tried with the provider's config
        in each environment."""
        return None

    @classmethod
    def confirm_subscription(cls, config: ProviderConfig, callback: StatusCallback) -> None:
        """Check a subscription request against `config` and confirm it with the vendor.
        Raises `tidings.errors.Unauthorized` or `Forbidden` when the config does not expect
        it or it does not verify."""
        raise NotImplementedError(f"{cls.name} takes no subscription requests")


def channel_address(channel: str, recipient: dict[str, Any]) -> Any:
    """The recipient's address for a channel, or None. Routing skips channels without one."""
    if channel == "email":
        return recipient.get("email") or None
    if channel == "sms":
        return recipient.get("phone_number") or None
    if channel == "push":
        expo = recipient.get("expo")
        expo_tokens = (expo.get("tokens") or expo.get("token")) if isinstance(expo, dict) else None
        return recipient.get("firebaseToken") or expo_tokens or None
    if channel == "chat":
        return recipient.get("slack") or recipient.get("discord") or recipient.get("ms_teams")
    if channel == "webhook":
        return recipient.get("webhook") or None
    if channel == "inbox":
        return recipient.get("user_id") or None
    return None
