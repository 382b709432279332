"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.processes import START_SECONDS, WAIT_SECONDS, scaled


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    reply: str | None = None
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    data_started: threading.Event = field(default_factory=threading.Event)
    # Messages transmitted in full (DATA up to its final "."), whatever the reply.
    data_count: int = 0
    ehlo_started: threading.Event = field(default_factory=threading.Event)
    # A conversation that hangs for as long as the test needs, on a machine of any speed:
    # each EHLO takes the first of `ehlo_holds`, if any, and answers once it is set; the
    # answer to DATA waits for `data_hold`, if there is one. The sink sets them all when it
    # stops.
    ehlo_holds: list[threading.Event] = field(default_factory=list)
    data_hold: threading.Event | None = None
    taken_holds: list[threading.Event] = field(default_factory=list)

    async def _wait_for(self, hold: threading.Event) -> None:
        self.taken_holds.append(hold)
        await asyncio.to_thread(hold.wait, scaled(START_SECONDS))

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo_started.set()
        if self.ehlo_holds:
            await self._wait_for(self.ehlo_holds.pop(0))
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        with self.lock:
            self.data_count += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_hold is not None:
            await self._wait_for(self.data_hold)
        if self.reply is not None:
            return self.reply
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpSink:
    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = _free_port()
        # aiosmtpd gives its thread 5 s to start by default: not enough on a busy machine.
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=scaled(WAIT_SECONDS)
        )

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def provider_config(self, **extra: Any) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "from_email": "notifications@tidings.test",
            "from_name": "Tidings Test",
            **extra,
        }


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    for hold in [*sink.handler.taken_holds, *sink.handler.ehlo_holds]:
        hold.set()
    sink.controller.stop()
