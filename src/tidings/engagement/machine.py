"""Which opens and clicks are a machine's, not a person's (docs/deliverability.md, "Machine
opens and clicks"). A machine's hit is recorded with `machine: true` and its reason, and
counts for nothing: it sets no `opened_at` or `clicked_at` and moves no status.

The rule, first match wins:
1. `apple_privacy`: Apple Mail Privacy Protection. Apple's proxy fetches the images of every
   message as it arrives, read or not. Its requests come from Apple's network, 17.0.0.0/8
   (the address block Apple documents for its services), with the user agent `Mozilla/5.0`
   and nothing more, which no browser or mail client sends: either one marks the hit.
2. `no_user_agent`: no User-Agent at all; every mail client and browser sends one.
3. `automated_client`: a user agent that names a bot, crawler, link scanner, mail security
   gateway or HTTP library (`AUTOMATED_AGENTS`).
4. `too_soon`: within `machine_engagement_seconds` (TIDINGS_MACHINE_ENGAGEMENT_SECONDS, 2 by
   default) of the send, or before the send was even recorded: security scanners fetch a
   message's pixel and follow its links as it is delivered, faster than a person reads it.

Image proxies that fetch when the person opens the message count as people: Gmail's
(`GoogleImageProxy`) and Yahoo's (`YahooMailProxy`). They hide the reader's address and
device, and Gmail caches the image, so later opens of the same message are not seen.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
APPLE_PROXY_AGENT = "Mozilla/5.0"
AUTOMATED_AGENTS = re.compile(
    r"(?:bot|crawler|spider|scanner)(?:[/;\s)_-]|$)|slurp|python-|aiohttp|httpx|curl/|wget/"
    r"|go-http-client|java/|okhttp|apache-httpclient|libwww|headlesschrome|phantomjs"
    r"|barracuda|mimecast|proofpoint|symantec|forcepoint|trendmicro|sophos|fortinet"
    r"|safelinks|linkchecker|microsoft office existence discovery",
    re.IGNORECASE,
)
APPLE_PRIVACY = "apple_privacy"
NO_USER_AGENT = "no_user_agent"
AUTOMATED_CLIENT = "automated_client"
TOO_SOON = "too_soon"


def _from_apple(client_ip: str | None) -> bool:
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in APPLE_NETWORK


def machine_reason(
    user_agent: str,
    client_ip: str | None,
    sent_at: datetime | None,
    now: datetime,
    window_seconds: float,
) -> str | None:
    """Why an open or click is a machine's (one of the reasons above), or None: a person's."""
    agent = user_agent.strip()
    if agent == APPLE_PROXY_AGENT or _from_apple(client_ip):
        return APPLE_PRIVACY
    if not agent:
        return NO_USER_AGENT
    if AUTOMATED_AGENTS.search(agent):
        return AUTOMATED_CLIENT
    if window_seconds > 0 and (sent_at is None or (now - sent_at).total_seconds() < window_seconds):
        return TOO_SOON
    return None
