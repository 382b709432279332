"""Provider configuration through the API: secrets are masked, and kept when left out."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.provider.service import MASK


def test_secrets_left_out_or_masked_on_a_new_put_keep_their_stored_values(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    first = {
        "bot_token": "xoxb-first",
        "incoming_webhook_url": "https://hooks.slack.com/services/T0/B0/first",
        "default_channel": "#ops",
    }
    created = client.put("/providers/slack", json={"config": first}, headers=headers)
    assert created.status_code == 201, created.text
    shown = created.json()["config"]
    assert shown["bot_token"] == MASK
    assert shown["incoming_webhook_url"] == MASK

    # A new default channel; the bot token sent back masked, the webhook URL left out.
    changed = client.put(
        "/providers/slack",
        json={"config": {"default_channel": "#alerts", "bot_token": MASK}},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"] == {
        **shown,
        "default_channel": "#alerts",
    }
