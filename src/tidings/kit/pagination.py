"""Opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii

from tidings.errors import BadRequest


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        number = int(value)
        if prefix != "id" or not 0 <= number < 2**63:
            raise ValueError(text)
        return number
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(
            "The cursor is not one this API returned. Pass the `cursor` from the previous "
            "page's `paging`, or leave it out to start from the first page.",
            code="invalid_cursor",
            field="cursor",
        ) from exc
