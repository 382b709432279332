"""Push notifications through Firebase Cloud Messaging (HTTP v1 API).

Sends `content.title`/`content.body` as the notification and `content.data` as the data payload
to the recipient's `firebaseToken` (one registration token, or a list of them: one request per
token, as the v1 API takes one target per message).

Authentication is a Google service account. The provider signs a JWT (RS256) with the account's
private key, claims `iss` = `client_email`, `scope` =
`https://www.googleapis.com/auth/firebase.messaging`, `aud` = `token_uri`, `iat` and `exp`
(one hour later, the maximum), and exchanges it at `token_uri` with the form
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>` for an OAuth2 access
token (`{access_token, expires_in, token_type}`). The provider instance (one per configuration)
keeps its token until a minute before it expires, and drops it when FCM answers 401
UNAUTHENTICATED or the instance is closed.

The send is `POST {base_url}/v1/projects/{project_id}/messages:send` with `Authorization: Bearer`
and `{"message": {"token", "notification": {"title", "body"}, "data": {string: string}}}`; FCM
answers `{"name": "projects/…/messages/…"}`, which is the provider message id. Errors are
`{"error": {code, message, status, details}}`, with the FCM error code in the
`google.firebase.fcm.v1.FcmError` detail: UNREGISTERED (404), INVALID_ARGUMENT (400),
SENDER_ID_MISMATCH (403) and THIRD_PARTY_AUTH_ERROR (401) are permanent; QUOTA_EXCEEDED (429),
UNAVAILABLE (503) and INTERNAL (500) are retryable.

Follows https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send,
https://firebase.google.com/docs/cloud-messaging/error-codes and
https://developers.google.com/identity/protocols/oauth2/service-account.

Config: `service_account` (secret; the service account key JSON with `project_id`,
`client_email`, `private_key`, `token_uri`) and `base_url`.

FCM documents no idempotency key for messages:send, so `delivery.idempotency_key` is not sent.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import Field, SecretStr, field_validator

from tidings.provider.base import (
    EXCERPT_LIMIT,
    BaseUrl,
    Delivery,
    OutboundTarget,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    SendResult,
    nonempty_str,
    retryable_first,
)
from tidings.provider.http import base_url_field, excerpt, json_field, post, reply_field
from tidings.provider.push.base import PushProvider, push_notification, push_tokens
from tidings.provider.registry import register

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_SECONDS = 3600
# A cached access token is not used in its last minute, so it cannot expire in flight.
EXPIRY_MARGIN_SECONDS = 60.0
REQUIRED_ACCOUNT_FIELDS = ("project_id", "client_email", "private_key")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str


def parse_service_account(text: str) -> ServiceAccount:
    """The fields of a service account key JSON; ValueError names what is missing, never values."""
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("the service account is not valid JSON") from None
    if not isinstance(info, dict):
        raise ValueError("the service account JSON must be an object")
    missing = [key for key in REQUIRED_ACCOUNT_FIELDS if not isinstance(info.get(key), str)]
    if missing or not all(info[key] for key in REQUIRED_ACCOUNT_FIELDS):
        names = ", ".join(missing or REQUIRED_ACCOUNT_FIELDS)
        raise ValueError(f"the service account JSON needs non-empty {names}")
    return ServiceAccount(
        project_id=info["project_id"],
        client_email=info["client_email"],
        private_key=info["private_key"],
        private_key_id=nonempty_str(info.get("private_key_id")),
        token_uri=str(info.get("token_uri") or GOOGLE_TOKEN_URI),
    )


class FcmConfig(ProviderConfig):
    service_account: SecretStr = Field(
        title="Service account key (JSON)",
        description=(
            "The Firebase project's service account key file, as JSON (Firebase console → "
            "Project settings → Service accounts → Generate new private key). It needs "
            "project_id, client_email, private_key and token_uri."
        ),
    )
    base_url: BaseUrl = base_url_field(
        "https://fcm.googleapis.com", "Base URL of the FCM HTTP v1 API."
    )

    @field_validator("service_account")
    @classmethod
    def _is_a_service_account(cls, value: SecretStr) -> SecretStr:
        parse_service_account(value.get_secret_value())
        return value

    def outbound_targets(self) -> list[OutboundTarget]:
        account = parse_service_account(self.service_account.get_secret_value())
        token = OutboundTarget("service_account.token_uri", url=account.token_uri)
        return [*super().outbound_targets(), token]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_assertion(account: ServiceAccount, now: int) -> str:
    """The RS256-signed JWT that Google exchanges for an access token."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECONDS,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    try:
        key = serialization.load_pem_private_key(account.private_key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PermanentProviderError(
            "FCM: the service account's private_key is not a readable PEM private key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PermanentProviderError("FCM: the service account's private_key is not an RSA key")
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def _oauth_reason(response: httpx.Response) -> str | None:
    error = json_field(response, "error")
    description = json_field(response, "error_description")
    if isinstance(error, dict):  # some Google endpoints answer in the API error shape
        return str(error.get("message") or error.get("status") or "") or None
    return ": ".join(str(part) for part in (error, description) if part) or None


def _fcm_error_code(response: httpx.Response) -> str | None:
    details = json_field(response, "error", "details")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and detail.get("errorCode"):
                return str(detail["errorCode"])
    status = json_field(response, "error", "status")
    return str(status) if status else None


def _fcm_reason(response: httpx.Response) -> str | None:
    message = json_field(response, "error", "message")
    code = _fcm_error_code(response)
    return ": ".join(str(part) for part in (code, message) if part) or None


def _string_map(data: Any) -> dict[str, str]:
    """FCM's data payload is a map of strings; other JSON values travel JSON-encoded."""
    if not isinstance(data, dict):
        return {}
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in data.items()
        if value is not None
    }


def firebase_tokens(recipient: dict[str, Any]) -> list[str]:
    value = recipient.get("firebaseToken")
    return push_tokens(value if isinstance(value, list) else [value])


@register
class FcmProvider(PushProvider[FcmConfig]):
    name = "firebase-fcm"
    display_name = "Firebase Cloud Messaging"
    docs_url = "https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send"
    no_tokens = "FCM: the recipient has no firebaseToken"

    def __init__(self, config: FcmConfig, http: httpx.Client) -> None:
        super().__init__(config, http)
        # The access token and its expiry (as time.time()); never the private key.
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    def close(self) -> None:
        with self._token_lock:
            self._token = None

    def address(self, recipient: dict[str, Any]) -> list[str]:
        return firebase_tokens(recipient)

    def send_push(self, delivery: Delivery, tokens: list[str]) -> SendResult:
        config = self.config
        account = parse_service_account(config.service_account.get_secret_value())

        message: dict[str, Any] = {}
        notification = push_notification(delivery)
        if notification:
            message["notification"] = notification
        data = _string_map(delivery.content.get("data"))
        if data:
            message["data"] = data

        names: list[str] = []
        excerpts: list[str] = []
        errors: list[ProviderError] = []
        for token in tokens:
            try:
                response = self._send_one(config, account, {**message, "token": token})
            except ProviderError as error:
                errors.append(error)
                continue
            name = reply_field(response, "name")
            if name:
                names.append(str(name))
            excerpts.append(excerpt(response))

        if not excerpts:
            raise retryable_first(errors)
        failures = "; ".join(error.reason for error in errors)
        summary = " | ".join(excerpts) + (f" | failed: {failures}" if failures else "")
        return SendResult(
            provider_message_id=",".join(names) or None, response_excerpt=summary[:EXCERPT_LIMIT]
        )

    def _send_one(
        self, config: FcmConfig, account: ServiceAccount, message: dict[str, Any]
    ) -> httpx.Response:
        url = (
            f"{config.base_url.rstrip('/')}/v1/projects/"
            f"{quote(account.project_id, safe='')}/messages:send"
        )
        access_token, cached = self._access_token(account)
        try:
            return self._post_message(url, access_token, message)
        except PermanentProviderError as error:
            # A cached token can be revoked before its expiry; mint a new one and retry once.
            if not (cached and error.status_code == 401 and "UNAUTHENTICATED" in error.reason):
                raise
        with self._token_lock:
            self._token = None
        access_token, _ = self._access_token(account)
        return self._post_message(url, access_token, message)

    def _post_message(self, url: str, access_token: str, message: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        return post(self.http, "FCM", url, _fcm_reason, json={"message": message}, headers=headers)

    def _access_token(self, account: ServiceAccount) -> tuple[str, bool]:
        """An OAuth2 access token for the account, and whether it came from the cache."""
        with self._token_lock:
            cached = self._token
        if cached and cached[1] - EXPIRY_MARGIN_SECONDS > time.time():
            return cached[0], True

        assertion = sign_assertion(account, int(time.time()))
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        response = post(self.http, "Google OAuth", account.token_uri, _oauth_reason, data=form)
        access_token = reply_field(response, "access_token")
        expires_in = reply_field(response, "expires_in")
        if not isinstance(access_token, str) or not access_token:
            # The reply may hold other credentials, so it is not quoted.
            raise PermanentProviderError(
                "Google OAuth answered without an access_token", status_code=response.status_code
            )
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        with self._token_lock:
            self._token = (access_token, time.time() + lifetime)
        return access_token, False
