"""`POST /callbacks/ses`: Amazon SES notifications and events through an Amazon SNS HTTPS
subscription, replayed from the documented examples (tests/callback/payloads.py).

The SNS envelope and its signature follow
https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html and
https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html. The signing
certificate and the SubscribeURL are served by a loopback stand-in for SNS, named by the
provider config's `sns_base_url` (without it, only sns.<region>.amazonaws.com is trusted:
`test_only_sns_hosts_are_trusted`)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.callback.payloads import (
    SES_BOUNCE,
    SES_CLICK,
    SES_COMPLAINT,
    SES_DELIVERY,
    SES_MESSAGE_ID,
    SES_OPEN,
)
from tests.callback.support import configure, counts, history, last_entry, message, send_with
from tests.conftest import Keys
from tidings.provider import sns

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def config(httpserver: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "from_email": "john@example.com",
        "configuration_set": "tidings-events",
        "sns_topic_arn": TOPIC,
        "sns_base_url": httpserver.url_for("/sns"),
        **extra,
    }


def send_with_ses(client: TestClient, key: str, httpserver: HTTPServer) -> str:
    httpserver.expect_request("/sns/SimpleNotificationService.pem").respond_with_data(
        certificate(SIGNING_KEY), content_type="application/x-pem-file"
    )
    reply = {"MessageId": SES_MESSAGE_ID}
    path = "/v2/email/outbound-emails"
    return send_with(
        client, key, httpserver, "ses", config(httpserver), path, reply, SES_MESSAGE_ID
    )


def sns_message(
    httpserver: HTTPServer,
    kind: str,
    message: str,
    message_id: str,
    *,
    version: str = "1",
    key: rsa.RSAPrivateKey = SIGNING_KEY,
    topic: str = TOPIC,
    **extra: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": version,
        "SigningCertURL": httpserver.url_for("/sns/SimpleNotificationService.pem"),
        **extra,
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns.string_to_sign(body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def notification(httpserver: HTTPServer, event: dict[str, Any], message_id: str, **kw: Any) -> Any:
    return sns_message(
        httpserver,
        "Notification",
        orjson.dumps({**event, "mail": {**event["mail"], "tags": {}}}).decode(),
        message_id,
        UnsubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        **kw,
    )


def post(client: httpx.Client, body: dict[str, Any]) -> Any:
    # SNS posts JSON as text/plain, with its message type in a header.
    return client.post(
        "/callbacks/ses",
        content=orjson.dumps(body),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": body["Type"],
        },
    )


def test_the_send_is_signed_with_sigv4_and_tags_the_message(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_ses(client, keys.test, httpserver)
    (sent,) = [r for r, _ in httpserver.log if r.path == "/v2/email/outbound-emails"]
    assert sent.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
    )
    signed = "content-type;host;x-amz-content-sha256;x-amz-date"
    assert f"/us-east-1/ses/aws4_request, SignedHeaders={signed}, " in sent.headers["Authorization"]
    body = orjson.loads(sent.get_data())
    assert body["EmailTags"] == [{"Name": "tidings_message_id", "Value": message_id}]
    assert body["ConfigurationSetName"] == "tidings-events"
    assert body["Destination"] == {"ToAddresses": ["john@example.com"]}


def test_a_subscription_confirmation_for_the_topic_is_confirmed(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    send_with_ses(client, keys.test, httpserver)
    confirmed: list[str] = []

    def confirm(request: Request) -> Response:
        confirmed.append(request.args["Token"])
        return Response("<ConfirmSubscriptionResponse/>", content_type="text/xml")

    httpserver.expect_request(
        "/sns/",
        query_string={"Action": "ConfirmSubscription", "TopicArn": TOPIC, "Token": "2336412f37"},
    ).respond_with_handler(confirm)
    subscribe_url = (
        httpserver.url_for("/sns/")
        + f"?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37"
    )
    body = sns_message(
        httpserver,
        "SubscriptionConfirmation",
        f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, "
        "visit the SubscribeURL included in this message.",
        "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        Token="2336412f37",
        SubscribeURL=subscribe_url,
    )
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=1, subscribed=1)
    assert confirmed == ["2336412f37"]

    # Another topic, or a forged signature: refused, and nothing is visited.
    other = sns_message(
        httpserver,
        "SubscriptionConfirmation",
        "x",
        "m2",
        topic=f"{TOPIC}-other",
        Token="t",
        SubscribeURL=subscribe_url,
    )
    assert post(client, other).status_code == 403
    forged = sns_message(
        httpserver,
        "SubscriptionConfirmation",
        "x",
        "m3",
        key=OTHER_KEY,
        Token="2336412f37",
        SubscribeURL=subscribe_url,
    )
    refused = post(client, forged)
    assert refused.status_code == 403
    assert refused.json()["code"] == "invalid_signature"
    assert confirmed == ["2336412f37"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_documented_notifications_walk_the_message_up_the_ladder(
    client: TestClient, keys: Keys, httpserver: HTTPServer, version: str
) -> None:
    message_id = send_with_ses(client, keys.test, httpserver)

    delivered = notification(httpserver, SES_DELIVERY, "sns-1", version=version)
    assert post(client, delivered).json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"
    assert last_entry(client, keys.test, message_id)["detail"] == (
        "Amazon SES delivered: 250 ok:  Message 64111812 accepted"
    )
    assert post(client, notification(httpserver, SES_OPEN, "sns-2", version=version)).json() == (
        counts(received=1, applied=1)
    )
    assert last_entry(client, keys.test, message_id)["user_agent"].startswith("Mozilla/5.0 (iPhone")
    click = notification(httpserver, SES_CLICK, "sns-3", version=version)
    assert post(client, click).json() == counts(received=1, applied=1)
    assert last_entry(client, keys.test, message_id)["url"] == SES_CLICK["click"]["link"]
    assert message(client, keys.test, message_id)["status"] == "CLICKED"

    # SNS delivers at least once: a repeat of the same SNS message is a duplicate.
    entries = history(client, keys.test, message_id)
    assert post(client, click).json() == counts(received=1, duplicates=1)
    assert post(client, delivered).json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries

    complaint = notification(httpserver, SES_COMPLAINT, "sns-4", version=version)
    assert post(client, complaint).json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "COMPLAINED"
    assert last_entry(client, keys.test, message_id)["feedback_type"] == "abuse"


def test_a_permanent_bounce_is_hard_and_outranks_a_later_delivery(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_ses(client, keys.test, httpserver)
    assert post(client, notification(httpserver, SES_BOUNCE, "sns-1")).json() == counts(
        received=1, applied=1
    )
    view = message(client, keys.test, message_id)
    detail = "Amazon SES bounce (Permanent, General): smtp; 550 5.1.1 <jane@example.com>... User"
    assert (view["status"], view["tidings_status"], view["error"]) == (
        "UNDELIVERABLE",
        "BOUNCED",
        detail,
    )
    assert last_entry(client, keys.test, message_id)["bounce"] == "hard"
    late = post(client, notification(httpserver, SES_DELIVERY, "sns-2"))
    assert late.json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "BOUNCED"

    transient = {**SES_BOUNCE, "bounce": {**SES_BOUNCE["bounce"], "bounceType": "Transient"}}
    assert post(client, notification(httpserver, transient, "sns-3")).json()["recorded"] == 1
    assert last_entry(client, keys.test, message_id)["bounce"] == "soft"


def test_a_forged_or_foreign_notification_is_refused_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_ses(client, keys.test, httpserver)
    entries = history(client, keys.test, message_id)

    forged = post(client, notification(httpserver, SES_DELIVERY, "sns-1", key=OTHER_KEY))
    assert forged.status_code == 403
    assert forged.json() == {
        "code": "invalid_signature",
        "message": "The Amazon SNS message's signature does not verify: it was not signed by "
        "the SNS certificate it names.",
        "field": "Signature",
    }
    foreign = post(client, notification(httpserver, SES_DELIVERY, "sns-2", topic=f"{TOPIC}-x"))
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "unexpected_topic"

    elsewhere = notification(httpserver, SES_DELIVERY, "sns-3")
    elsewhere["SigningCertURL"] = "https://attacker.example.com/SimpleNotificationService.pem"
    refused = post(client, elsewhere)
    assert refused.status_code == 403
    assert "is not served by Amazon SNS" in refused.json()["message"]

    tampered = notification(httpserver, SES_DELIVERY, "sns-4")
    tampered["Message"] = tampered["Message"].replace("250 ok", "250 OK")
    assert post(client, tampered).status_code == 403

    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_without_a_topic_configured_notifications_are_refused(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_ses(client, keys.test, httpserver)
    settings = config(httpserver, base_url=httpserver.url_for(""))
    del settings["sns_topic_arn"]
    configure(client, keys.test, "ses", settings)
    response = post(client, notification(httpserver, SES_DELIVERY, "sns-1"))
    assert response.status_code == 401
    assert response.json()["code"] == "callback_not_configured"
    assert message(client, keys.test, message_id)["status"] == "SENT"


def test_only_sns_hosts_are_trusted() -> None:
    assert sns.sns_url("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem", None)
    assert sns.sns_url("https://sns.cn-north-1.amazonaws.com.cn/cert.pem", None)
    for url in (
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
        "https://attacker.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ):
        assert not sns.sns_url(url, None), url
    assert sns.sns_url("http://127.0.0.1:9/sns/cert.pem", "http://127.0.0.1:9/sns")
    assert not sns.sns_url("http://127.0.0.1:9/other/cert.pem", "http://127.0.0.1:9/sns")


def test_a_body_that_is_no_sns_message_is_a_400(client: TestClient) -> None:
    response = client.post("/callbacks/ses", json={"notificationType": "Delivery"})
    assert response.status_code == 400
    assert response.json()["field"] == "Type"
