"""The SMTP sink of the send and pipeline benchmarks: an aiosmtpd server in a process of its own.

It listens on a loopback port (`--port 0`: one the OS picks), prints one JSON line
`{"ready": true, "port": N}` on stdout once it accepts connections, and for each message it
accepts appends one JSON line to `--out`:

    {"t": <time.time() when DATA was accepted>, "subject": "...", "rcpt": ["..."]}

The line is written (and flushed, not fsynced) before the 250 reply goes out, so a message
the sender saw accepted is in the file. SIGTERM or SIGINT stops it.

    python bench/send/sink.py --out sink.jsonl [--port 0] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import re
import signal
import sys
import time
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO, Any

from aiosmtpd.smtp import SMTP

SUBJECT = re.compile(rb"^Subject: ?(.*?)\r?$", re.MULTILINE | re.IGNORECASE)


def subject_of(content: bytes) -> str:
    """The Subject header, read cheaply: a regex on the header block, the email parser for a
    folded or encoded one."""
    head = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = SUBJECT.search(head)
    if match is not None and b"=?" not in match.group(1):
        end = match.end()
        if end >= len(head) - 1 or head[end + 1 : end + 2] not in (b" ", b"\t"):
            return match.group(1).decode("utf-8", errors="replace")
    return str(BytesHeaderParser(policy=policy.default).parsebytes(content).get("Subject", ""))


class RecordingHandler:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        accepted = time.time()
        content = envelope.content
        if isinstance(content, str):
            content = content.encode()
        record = {
            "t": accepted,
            "subject": subject_of(content),
            "rcpt": list(envelope.rcpt_tos),
        }
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()
        self.count += 1
        return "250 Message accepted for delivery"


async def serve(port: int, out_path: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with out_path.open("a", encoding="utf-8") as out:
        handler = RecordingHandler(out)
        # A fixed hostname: without one aiosmtpd resolves the FQDN for every connection.
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench-sink", ident="bench-sink"),
            host="127.0.0.1",
            port=port,
            backlog=512,
        )
        bound = server.sockets[0].getsockname()[1]
        sys.stdout.write(json.dumps({"ready": True, "port": bound}) + "\n")
        sys.stdout.flush()
        async with server:
            await stop.wait()
        sys.stderr.write(f"sink: accepted {handler.count} message(s)\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON lines file to append to")
    parser.add_argument("--port", type=int, default=0, help="0: a free port the OS picks")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--verbose", action="store_true", help="log every SMTP session")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    use_uvloop = args.loop == "uvloop"
    if args.loop == "auto":
        use_uvloop = importlib.util.find_spec("uvloop") is not None
    if use_uvloop:
        import uvloop

        uvloop.run(serve(args.port, args.out))
    else:
        asyncio.run(serve(args.port, args.out))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
