"""Provider instances: built once per environment and configuration, holding their own
connections, closed when the configuration changes and at shutdown.

The test drives the pipeline's steps itself (no job consumer), so every send runs on this
thread and reuses its connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.callback.support import configure, prepare, send
from tests.conftest import Keys
from tests.smtp_sink import SinkHandler, _free_port
from tidings.app import create_app
from tidings.message import pipeline
from tidings.runtime import Runtime


class CountingHandler(SinkHandler):
    """The sink, counting the connections opened (EHLO) and closed politely (QUIT)."""

    def __init__(self) -> None:
        super().__init__()
        self.greetings = 0
        self.quits = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greetings += 1
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"


@pytest.fixture
def sink() -> Iterator[tuple[CountingHandler, int]]:
    handler = CountingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def _smtp(port: int, from_name: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_email": "n@tidings.test",
        "from_name": from_name,
    }


def _send_and_deliver(client: TestClient, key: str, runtime: Runtime) -> str:
    message_id = send(client, key)
    for attempt in pipeline.process_message(runtime.jobs.context, message_id):
        status = pipeline.attempt_delivery(runtime.jobs.context, attempt)
        assert status == "sent"
    return message_id


def test_one_instance_per_configuration_keeps_its_connection_until_the_config_changes(
    runtime: Runtime, keys: Keys, sink: tuple[CountingHandler, int]
) -> None:
    handler, port = sink
    with TestClient(create_app(runtime)) as client:
        configure(client, keys.test, "smtp", _smtp(port, "First"))
        prepare(client, keys.test, {"email": "a@example.org"})
        _send_and_deliver(client, keys.test, runtime)
        _send_and_deliver(client, keys.test, runtime)
        assert (len(handler.messages), handler.greetings, handler.quits) == (2, 1, 0)

        # Routing sees the new configuration, and before the send the old instance closes
        # its connection; an instance of the new one opens its own.
        configure(client, keys.test, "smtp", _smtp(port, "Second"))
        _send_and_deliver(client, keys.test, runtime)
        assert (len(handler.messages), handler.greetings, handler.quits) == (3, 2, 1)
        assert [email["From"] for email in handler.messages] == [
            "First <n@tidings.test>",
            "First <n@tidings.test>",
            "Second <n@tidings.test>",
        ]

        # At shutdown (Runtime.close), every instance closes its connections.
        runtime.jobs.context.providers.close()
        assert handler.quits == 2


def test_each_environment_has_its_own_instance(
    runtime: Runtime, keys: Keys, sink: tuple[CountingHandler, int]
) -> None:
    handler, port = sink
    with TestClient(create_app(runtime)) as client:
        for key in (keys.test, keys.production):
            configure(client, key, "smtp", _smtp(port, "Same"))
            prepare(client, key, {"email": "a@example.org"})
            _send_and_deliver(client, key, runtime)
        _send_and_deliver(client, keys.test, runtime)
        assert (len(handler.messages), handler.greetings, handler.quits) == (3, 2, 0)
