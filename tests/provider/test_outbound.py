"""Providers can't be aimed inward: a literal internal target is refused when the provider is
saved, and any other (a name that resolves inward, a recipient's webhook) when it is sent to,
as a permanent error without a retry. These tests run WITHOUT the suite's loopback allowance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.conftest import Keys, bearer
from tests.kit.test_outbound import INTERNAL_HOSTS
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink
from tidings.config import Settings
from tidings.kit.allowances import parse_allowances
from tidings.models import Message, MessageDelivery
from tidings.provider import config_file
from tidings.runtime import Runtime

# Internal addresses a name may resolve to at run time.
INTERNAL_ADDRESSES = ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1"]
SECRET = "s" * 16


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"outbound_allow": ""})


def _url_config(field: str, url: str) -> tuple[str, dict[str, Any]]:
    if field == "webhook":
        return "webhook", {"url": url, "signing_secret": SECRET}
    if field == "slack":
        return "slack", {"incoming_webhook_url": url}
    return "sendgrid", {"api_key": "SG.k", "from_email": "n@tidings.test", "base_url": url}


@pytest.mark.parametrize(
    ("field", "config_field"),
    [
        ("webhook", "config.url"),
        ("sendgrid", "config.base_url"),
        ("slack", "config.incoming_webhook_url"),
    ],
)
def test_a_provider_url_aimed_inward_is_refused_when_saved(
    client: TestClient, keys: Keys, field: str, config_field: str
) -> None:
    for host in INTERNAL_HOSTS:
        name, config = _url_config(field, f"http://{host}:8080/in")
        response = client.put(
            f"/providers/{name}", json={"config": config}, headers=bearer(keys.test)
        )
        assert response.status_code == 400, (host, response.text)
        error = response.json()
        assert error["code"] == "outbound_refused", host
        assert error["field"] == config_field, host
        assert "internal address" in error["message"], host
        assert "TIDINGS_OUTBOUND_ALLOW" in error["message"], host
    assert client.get("/providers", headers=bearer(keys.test)).json()["results"] == []


def test_an_smtp_host_aimed_inward_is_refused_when_saved(client: TestClient, keys: Keys) -> None:
    for host in INTERNAL_HOSTS:
        config = {"host": host.strip("[]"), "port": 25, "from_email": "n@tidings.test"}
        response = client.put("/providers/smtp", json={"config": config}, headers=bearer(keys.test))
        assert response.status_code == 400, (host, response.text)
        assert response.json()["field"] == "config.host", host
        assert "TIDINGS_OUTBOUND_ALLOW" in response.json()["message"], host


def test_an_fcm_token_uri_aimed_inward_is_refused_when_saved(
    client: TestClient, keys: Keys
) -> None:
    account = json.dumps(
        {
            "project_id": "p",
            "client_email": "sender@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
            "token_uri": "http://169.254.169.254/computeMetadata/v1/token",
        }
    )
    response = client.put(
        "/providers/firebase-fcm",
        json={"config": {"service_account": account}},
        headers=bearer(keys.test),
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "config.service_account.token_uri"
    assert "BEGIN PRIVATE KEY" not in response.text


def test_public_targets_and_host_names_are_saved(client: TestClient, keys: Keys) -> None:
    for name, config in [
        _url_config("webhook", "https://hooks.example.com/in"),
        _url_config("sendgrid", "https://93.184.215.14"),
        ("smtp", {"host": "smtp.example.com", "port": 587, "from_email": "n@tidings.test"}),
    ]:
        response = client.put(
            f"/providers/{name}", json={"config": config}, headers=bearer(keys.test)
        )
        assert response.status_code == 201, response.text


def _send(client: TestClient, key: str, to: dict[str, Any], channel: str) -> str:
    body = {
        "to": to,
        "content": {"title": "Hi", "body": "there"},
        "routing": {"method": "single", "channels": [channel]},
    }
    response = client.post("/send", json={"message": body}, headers=bearer(key))
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def _attempts(runtime: Runtime, message_id: str) -> int:
    with runtime.database.read() as session:
        (attempts,) = session.execute(
            select(MessageDelivery.attempts)
            .join(Message, Message.id == MessageDelivery.message_pk)
            .where(Message.message_id == message_id)
        ).one()
    return int(attempts)


def test_a_recipients_webhook_aimed_inward_fails_at_send_without_a_retry(
    client: TestClient, keys: Keys, runtime: Runtime, httpserver: HTTPServer
) -> None:
    configured = {"config": {"signing_secret": SECRET}}
    client.put("/providers/webhook", json=configured, headers=bearer(keys.test))
    for host in INTERNAL_HOSTS:
        url = f"http://{host}:{httpserver.port}/hook"
        message_id = _send(client, keys.test, {"webhook": url}, "webhook")
        message = message_in(client, keys.test, message_id, "UNDELIVERABLE", "SENT")
        assert message["status"] == "UNDELIVERABLE", host
        assert "TIDINGS_OUTBOUND_ALLOW" in message["error"], host
        assert _attempts(runtime, message_id) == 1, host
    assert httpserver.log == []


def test_a_base_url_whose_name_resolves_inward_fails_at_send_without_a_retry(
    client: TestClient, keys: Keys, runtime: Runtime, httpserver: HTTPServer
) -> None:
    """The name passes the save-time check; the guard resolves it when sending."""
    url = f"http://sendgrid.internal.test:{httpserver.port}"
    name, config = _url_config("sendgrid", url)
    assert client.put(f"/providers/{name}", json={"config": config}, headers=bearer(keys.test))
    httpserver.expect_request("/v3/mail/send").respond_with_data("", status=202)
    for address in INTERNAL_ADDRESSES:
        runtime.outbound.resolver = lambda host, port, address=address: [address]
        message_id = _send(client, keys.test, {"email": "u@example.org"}, "email")
        message = message_in(client, keys.test, message_id, "UNDELIVERABLE", "SENT")
        assert message["status"] == "UNDELIVERABLE", address
        assert "sendgrid.internal.test (" in message["error"], address
        assert "TIDINGS_OUTBOUND_ALLOW" in message["error"], address
        assert _attempts(runtime, message_id) == 1, address
    assert httpserver.log == []

    # The operator allows the name: the same provider now delivers.
    runtime.outbound.resolver = lambda host, port: ["127.0.0.1"]
    runtime.outbound.allowances = parse_allowances("sendgrid.internal.test")
    message_id = _send(client, keys.test, {"email": "u@example.org"}, "email")
    assert message_in(client, keys.test, message_id, "SENT", "UNDELIVERABLE")["status"] == "SENT"
    (request, _), *_ = httpserver.log
    assert request.headers["Host"] == f"sendgrid.internal.test:{httpserver.port}"


def test_an_smtp_host_whose_name_resolves_inward_fails_at_send_without_a_retry(
    client: TestClient, keys: Keys, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    config = {**smtp_sink.provider_config(), "host": "mail.internal.test"}
    assert client.put("/providers/smtp", json={"config": config}, headers=bearer(keys.test))
    runtime.outbound.resolver = lambda host, port: ["127.0.0.1"]
    message_id = _send(client, keys.test, {"email": "u@example.org"}, "email")
    message = message_in(client, keys.test, message_id, "UNDELIVERABLE", "SENT")
    assert message["status"] == "UNDELIVERABLE"
    assert "mail.internal.test (127.0.0.1)" in message["error"]
    assert "TIDINGS_OUTBOUND_ALLOW" in message["error"]
    assert _attempts(runtime, message_id) == 1
    assert smtp_sink.messages == []

    # Allowed by host and port, the same server gets the email.
    runtime.outbound.allowances = parse_allowances(f"mail.internal.test:{config['port']}")
    message_id = _send(client, keys.test, {"email": "u@example.org"}, "email")
    assert message_in(client, keys.test, message_id, "SENT", "UNDELIVERABLE")["status"] == "SENT"
    assert [email["To"] for email in smtp_sink.messages] == ["u@example.org"]


def test_the_config_file_is_refused_at_start_for_an_internal_smtp_host(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "tidings.toml"
    path.write_text(
        '[providers.smtp]\nhost = "10.0.0.25"\nport = 25\nfrom_email = "n@example.org"\n'
    )
    with pytest.raises(
        config_file.ConfigFileError,
        match=r"providers\.smtp: config\.host: 10\.0\.0\.25 is an internal address \(private\)",
    ):
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)

    runtime.outbound.allowances = parse_allowances("10.0.0.25:25")
    assert sorted(
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)
    ) == ["smtp@production", "smtp@test"]


ALLOW_EVERYTHING = "0.0.0.0/0,::/0"


@pytest.mark.parametrize("provider", ["sendgrid", "smtp"])
def test_every_spelling_saved_while_allowed_is_refused_at_send_once_no_longer_allowed(
    client: TestClient,
    keys: Keys,
    runtime: Runtime,
    httpserver: HTTPServer,
    smtp_sink: SmtpSink,
    provider: str,
) -> None:
    """A target saved while the operator allowed it is checked again on every send."""
    for host in INTERNAL_HOSTS:
        if provider == "smtp":
            config = {**smtp_sink.provider_config(), "host": host.strip("[]")}
        else:
            _, config = _url_config("sendgrid", f"http://{host}:{httpserver.port}")
        runtime.outbound.allowances = parse_allowances(ALLOW_EVERYTHING)
        response = client.put(
            f"/providers/{provider}", json={"config": config}, headers=bearer(keys.test)
        )
        assert response.status_code in (200, 201), (host, response.text)
        runtime.outbound.allowances = ()
        message_id = _send(client, keys.test, {"email": "u@example.org"}, "email")
        message = message_in(client, keys.test, message_id, "UNDELIVERABLE", "SENT")
        assert message["status"] == "UNDELIVERABLE", host
        assert "internal address" in message["error"], host
        assert "TIDINGS_OUTBOUND_ALLOW" in message["error"], host
        assert _attempts(runtime, message_id) == 1, host
    assert httpserver.log == []
    assert smtp_sink.messages == []
