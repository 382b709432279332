"""`X-Signature`, as Segment's Webhooks destination signs: hex HMAC-SHA1 of the body.

Segment signs the raw request body with the shared secret. When it batches, it signs only the
first event of the batch (`JSON.stringify(batch[0])`), so for a JSON array the first element,
exactly as it appears in the body, is accepted too. That rule authenticates the first event
only: whoever holds one validly signed event could append others to it. See
docs/tracking-api.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

_WHITESPACE = b" \t\r\n"
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_COMMA = ord(",")


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def first_element(body: bytes) -> bytes | None:
    """The bytes of the first element of a JSON array body, or None if it is not one."""
    start = len(body) - len(body.lstrip(_WHITESPACE))
    if start >= len(body) or body[start] != ord("["):
        return None
    start += 1
    while start < len(body) and body[start] in _WHITESPACE:
        start += 1
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(body)):
        byte = body[index]
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
        elif byte in _CLOSE:
            if depth == 0:
                element = body[start:index].rstrip(_WHITESPACE)
                return element or None
            depth -= 1
        elif byte == _COMMA and depth == 0:
            return body[start:index].rstrip(_WHITESPACE) or None
    return None


def verify(body: bytes, signature: str | None, secrets: Sequence[str]) -> bool:
    """True when `signature` is the HMAC of the body (or of a batch's first element) under
    one of the active secrets. Every candidate is compared, each in constant time."""
    if not signature or not secrets:
        return False
    presented = signature.strip().lower().encode()
    signed = [body]
    first = first_element(body)
    if first is not None:
        signed.append(first)
    matched = False
    for secret in secrets:
        for candidate in signed:
            matched |= hmac.compare_digest(sign(secret, candidate).encode(), presented)
    return matched
