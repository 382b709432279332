"""Opaque keyset cursors, and the `cursor` and `limit` query parameters of list endpoints."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from tidings.errors import BadRequest

Row = TypeVar("Row")


class Paging(BaseModel):
    """Courier's paging: pass `cursor` back to get the next page while `more` is true."""

    cursor: str | None
    more: bool


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


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    """One page of rows, and the cursor of the next page when more follow."""

    rows: list[Row]
    cursor: str | None

    @property
    def more(self) -> bool:
        return self.cursor is not None

    def paging(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "more": self.more}


def page(
    rows: Sequence[Row], limit: int, key: Callable[[Row], int] = attrgetter("id")
) -> Page[Row]:
    """The first `limit` of `rows`, read with `limit + 1` so that one more row tells whether
    another page follows; its cursor is the `key` of the page's last row."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    return Page(kept, encode_cursor(key(kept[-1])) if more else None)


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A list endpoint's `cursor` and `limit` query parameters."""

    cursor: str | None
    limit: int

    @property
    def after_id(self) -> int | None:
        """The key the page starts after; a cursor this API did not return is a 400."""
        return decode_cursor(self.cursor)

    @property
    def rows_to_read(self) -> int:
        """One row more than the page holds: whether it is there tells whether more follow."""
        return self.limit + 1

    def page(self, rows: Sequence[Row], key: Callable[[Row], int] = attrgetter("id")) -> Page[Row]:
        """The page of `rows`, read with `rows_to_read`."""
        return page(rows, self.limit, key)


def page_query(default_limit: int) -> Callable[..., PageQuery]:
    """The dependency that reads `cursor` and `limit` (1 to 100, `default_limit` when left
    out). The cursor is decoded when the endpoint asks for `after_id`, after FastAPI has
    checked every parameter."""

    def read(
        cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = default_limit
    ) -> PageQuery:
        return PageQuery(cursor, limit)

    return read


# A list endpoint's paging parameters, by the page size it defaults to.
PageOf20 = Annotated[PageQuery, Depends(page_query(20))]
PageOf50 = Annotated[PageQuery, Depends(page_query(50))]
PageOf100 = Annotated[PageQuery, Depends(page_query(100))]
