"""Amazon SNS HTTP(S) deliveries: the message envelope and its signature.

Follows https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html and
https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html. SNS posts a
JSON envelope (`Type`: `Notification`, `SubscriptionConfirmation` or
`UnsubscribeConfirmation`) and signs it with the key of an X.509 certificate it serves at
`SigningCertURL`:
- the text signed is `Name\\nValue\\n` for each signed field in this order: for a
  notification `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
  `TopicArn`, `Type`; for the confirmations `Message`, `MessageId`, `SubscribeURL`,
  `Timestamp`, `Token`, `TopicArn`, `Type`;
- `SignatureVersion` 1 is RSA PKCS#1 v1.5 with SHA-1, 2 the same with SHA-256; `Signature`
  is base64;
- the certificate is fetched over https from an `sns.<region>.amazonaws.com` host (AWS:
  "the certificate should come from an SNS-signed URL"; never trust one named elsewhere), and
  so is the `SubscribeURL` of a confirmation. Both requests go through the outbound client.

A deployment that must reach a stand-in for SNS (tests) names its base URL explicitly
(`certificate_base_url`); nothing else relaxes the host check.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tidings.errors import BadRequest, Forbidden
from tidings.kit.outbound import OutboundRefused
from tidings.provider.callback import text

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
TYPES = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SHAPE = "Amazon SNS posts a JSON message with Type, MessageId, TopicArn and Signature"

_CERTIFICATES: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
_CERTIFICATES_LOCK = threading.Lock()
_CERTIFICATES_KEPT = 32


def envelope(body: Any) -> dict[str, Any]:
    """The SNS message, checked to be one (400 otherwise)."""
    if not isinstance(body, dict) or body.get("Type") not in TYPES:
        raise BadRequest(
            f"This is not an Amazon SNS message. {SHAPE}.", code="invalid_request", field="Type"
        )
    return body


def string_to_sign(message: dict[str, Any]) -> bytes:
    fields = NOTIFICATION_FIELDS if message.get("Type") == NOTIFICATION else CONFIRMATION_FIELDS
    return "".join(
        f"{name}\n{text(message[name])}\n" for name in fields if message.get(name) is not None
    ).encode()


def sns_url(url: str, certificate_base_url: str | None) -> bool:
    """Whether `url` is one SNS serves: https on an `sns.<region>.amazonaws.com` host, or
    under the configured stand-in's base URL."""
    if certificate_base_url:
        return url.startswith(certificate_base_url.rstrip("/") + "/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.scheme == "https" and bool(SNS_HOST.match(parsed.host)) and not parsed.port


def _refused(reason: str) -> Forbidden:
    return Forbidden(
        f"The Amazon SNS message's signature does not verify: {reason}.",
        code="invalid_signature",
        field="Signature",
    )


def verify(
    message: dict[str, Any], http: httpx.Client | None, certificate_base_url: str | None
) -> None:
    """Check the message's signature with SNS's certificate (403 when it does not verify)."""
    algorithm = HASHES.get(text(message.get("SignatureVersion")))
    if algorithm is None:
        raise _refused("SignatureVersion must be 1 or 2")
    url = text(message.get("SigningCertURL"))
    if not sns_url(url, certificate_base_url):
        raise _refused(
            f"the signing certificate {url!r} is not served by Amazon SNS (https on an "
            "sns.<region>.amazonaws.com host)"
        )
    try:
        signature = base64.b64decode(text(message.get("Signature")), validate=True)
    except binascii.Error:
        raise _refused("Signature is not base64") from None
    key = _certificate_key(url, http)
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise _refused("it was not signed by the SNS certificate it names") from None


def _certificate_key(url: str, http: httpx.Client | None) -> rsa.RSAPublicKey:
    """The public key of the certificate at `url`, fetched once and kept (a few at most)."""
    with _CERTIFICATES_LOCK:
        key = _CERTIFICATES.get(url)
        if key is not None:
            _CERTIFICATES.move_to_end(url)
            return key
    if http is None:
        raise _refused("no client to fetch the signing certificate with")
    try:
        response = http.get(url)
        response.raise_for_status()
        certificate = x509.load_pem_x509_certificate(response.content)
    except (httpx.HTTPError, OutboundRefused, ValueError) as exc:
        raise _refused(f"the signing certificate could not be fetched: {exc}") from exc
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise _refused("the signing certificate does not hold an RSA key")
    with _CERTIFICATES_LOCK:
        _CERTIFICATES[url] = public
        while len(_CERTIFICATES) > _CERTIFICATES_KEPT:
            _CERTIFICATES.popitem(last=False)
    return public


def confirm_subscription(
    message: dict[str, Any], http: httpx.Client | None, certificate_base_url: str | None
) -> None:
    """Visit the confirmation's `SubscribeURL` (an SNS URL only), as AWS asks."""
    url = text(message.get("SubscribeURL"))
    if not sns_url(url, certificate_base_url):
        raise Forbidden(
            f"The SubscribeURL {url!r} is not an Amazon SNS URL (https on an "
            "sns.<region>.amazonaws.com host): the subscription was not confirmed.",
            code="invalid_subscribe_url",
            field="SubscribeURL",
        )
    if http is None:
        raise BadRequest("No client to confirm the subscription with.", code="invalid_request")
    try:
        http.get(url).raise_for_status()
    except (httpx.HTTPError, OutboundRefused) as exc:
        raise BadRequest(
            f"Amazon SNS did not confirm the subscription: {exc}. SNS sends the confirmation "
            "again; it can also be confirmed in the SNS console.",
            code="subscription_not_confirmed",
            field="SubscribeURL",
        ) from exc
