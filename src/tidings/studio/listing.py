"""Paging and filters of Studio's lists, all in the URL's query string so that a list can be
shared, bookmarked and reloaded as it was.

Lists read newest first page with `before` (the cursor of a page's last row: "Older →") and
`after` (of its first row: "← Newer"); lists read in id order page with `after` alone
("Next page →"). `limit` sets the rows a page holds (1 to 200). The cursors are those of the
API (`tidings.kit.pagination`). A filter value Studio cannot use (an unknown status, a date
that is not one) is reported at its field, with a 400 page, rather than ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from tidings.errors import AppError, BadRequest
from tidings.kit.pagination import decode_cursor, encode_cursor
from tidings.studio.templating import render

Row = TypeVar("Row")
Position = TypeVar("Position")

MAX_LIMIT = 200
# The query parameters that say where a page starts, as opposed to which rows a list shows.
POSITION = ("before", "after")
# A row's position in its list, unless the list says otherwise: its id.
BY_ID: Callable[[Any], int] = attrgetter("id")


@dataclass(frozen=True, slots=True)
class Listing(Generic[Row]):
    """One page of a list, with the URLs of the pages either side (None: there is none).
    `first` is true on the first page, the one a live list refreshes. `one_way` is true for a
    list paged one way only (`in_order`, `by_time`): its links go to the first page and the
    next, rather than to newer and older rows."""

    rows: list[Row]
    newer: str | None
    older: str | None
    first: bool
    one_way: bool = False


class ListQuery:
    """A list page's query string: its filters, as typed (for the form and the links), the
    errors found in them by field, and where the page starts."""

    def __init__(self, request: Request, path: str, default_limit: int) -> None:
        self.request = request
        self.path = path
        self.params = request.query_params
        self.values: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.limit = default_limit
        given_limit = self.params.get("limit", "").strip()
        if given_limit:
            if given_limit.isdigit() and 1 <= int(given_limit) <= MAX_LIMIT:
                self.limit = int(given_limit)
                self.values["limit"] = given_limit
            else:
                self.errors["limit"] = (
                    f"limit: {given_limit!r} is not a number of rows from 1 to {MAX_LIMIT}."
                )

    def text(self, name: str) -> str | None:
        """A text filter: None when empty."""
        value = self.params.get(name, "").strip()
        if value:
            self.values[name] = value
        return value or None

    def choice(self, name: str, choices: Iterable[str], label: str) -> str | None:
        """One of `choices` (compared without case), returned as spelled there."""
        value = self.text(name)
        if value is None:
            return None
        by_folded = {choice.casefold(): choice for choice in choices}
        found = by_folded.get(value.casefold())
        if found is None:
            self.errors[name] = f"{label}: {value!r} is not one of {', '.join(by_folded.values())}."
        return found

    def time(self, name: str, label: str) -> datetime | None:
        """A time as a `datetime-local` field sends it (2026-01-31T09:30), in UTC."""
        value = self.text(name)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.errors[name] = (
                f"{label}: {value!r} is not a date and time; write it as 2026-01-31T09:30 (UTC)."
            )
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def cursor(self, name: str) -> int | None:
        """The row id a `before` or `after` cursor holds."""
        value = self.params.get(name) or None
        try:
            return decode_cursor(value)
        except BadRequest:
            self.errors[name] = (
                f"{name}: this link's page cursor is damaged; start again from the first page."
            )
            return None

    def url(self, **position: str) -> str:
        """This list's URL with its filters and the position given."""
        query = urlencode({**self.values, **position})
        return f"{self.path}?{query}" if query else self.path

    def url_at(self, path: str) -> str:
        """The URL of another view of this list (e.g. its live fragment), with its filters."""
        query = urlencode(self.values)
        return f"{path}?{query}" if query else path

    @property
    def filtered(self) -> bool:
        return any(name != "limit" for name in self.values)

    def newest_first(
        self,
        read: Callable[[int | None, int | None, int], Sequence[Row]],
        key: Callable[[Row], int] = BY_ID,
    ) -> Listing[Row]:
        """The page of a list read newest first. `read(before_id, after_id, rows)` gives the
        rows before `before_id` newest first, or with `after_id` those after it oldest first;
        `key(row)` is the cursor's value (`BY_ID`: the row's id). "← Newer" past the newest
        rows shows the first page."""
        before_id, after_id = self.cursor("before"), self.cursor("after")
        if after_id is not None:
            rows = read(None, after_id, self.limit + 1)
            if len(rows) > self.limit:
                kept = list(reversed(rows[: self.limit]))
                return Listing(
                    kept,
                    newer=self.url(after=encode_cursor(key(kept[0]))),
                    older=self.url(before=encode_cursor(key(kept[-1]))),
                    first=False,
                )
            before_id = None
        rows = read(before_id, None, self.limit + 1)
        kept = list(rows[: self.limit])
        newer = None
        if before_id is not None:
            newer = self.url(after=encode_cursor(key(kept[0]))) if kept else self.url()
        older = self.url(before=encode_cursor(key(kept[-1]))) if len(rows) > self.limit else None
        return Listing(kept, newer=newer, older=older, first=before_id is None)

    def in_order(
        self, read: Callable[[int | None, int], Sequence[Row]], key: Callable[[Row], int] = BY_ID
    ) -> Listing[Row]:
        """The page of a list read in id order: `read(after_id, rows)`. Its "newer" link is
        the first page, its "older" the next one."""
        return self._onward(self.cursor("after"), read, key, "after", encode_cursor)

    def by_time(
        self,
        read: Callable[[tuple[datetime, int] | None, int], Sequence[Row]],
        key: Callable[[Row], tuple[datetime, int]],
    ) -> Listing[Row]:
        """The page of a list read newest first by (time, id), e.g. profiles by their last
        update: `read(before, rows)`. Its "newer" link is the first page."""
        return self._onward(self._time_cursor(), read, key, "before", _encode_time_cursor)

    def _onward(
        self,
        start: Position | None,
        read: Callable[[Position | None, int], Sequence[Row]],
        key: Callable[[Row], Position],
        parameter: str,
        encode: Callable[[Position], str],
    ) -> Listing[Row]:
        """A list paged one way only, from `start` (None: the first page); the next page
        starts after its last row, given as `parameter`."""
        rows = read(start, self.limit + 1)
        kept = list(rows[: self.limit])
        more = len(rows) > self.limit
        return Listing(
            kept,
            newer=None if start is None else self.url(),
            older=self.url(**{parameter: encode(key(kept[-1]))}) if more else None,
            first=start is None,
            one_way=True,
        )

    def _time_cursor(self) -> tuple[datetime, int] | None:
        value = self.params.get("before") or None
        if value is None:
            return None
        try:
            text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            when, _, number = text.rpartition("|")
            return datetime.fromisoformat(when), int(number)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.errors["before"] = (
                "before: this link's page cursor is damaged; start again from the first page."
            )
            return None

    def render(
        self,
        template: str,
        listing: Listing[Any],
        *,
        refused: AppError | None = None,
        **context: Any,
    ) -> Response:
        """The list page: 400 with no rows and the errors at their fields, else the page;
        with the filters as typed, for the form and the links. With a form on the page
        `refused` (a create, say), the page answers that error's status, and shows it as
        `error`."""
        context.setdefault("error", refused)
        return render(
            self.request,
            template,
            refused.status_code if refused is not None else 400 if self.errors else 200,
            listing=empty() if self.errors else listing,
            filters=self.values,
            errors=self.errors,
            **context,
        )


def _encode_time_cursor(position: tuple[datetime, int]) -> str:
    when, number = position
    text = f"{when.isoformat()}|{number}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def empty() -> Listing[Any]:
    """The list of a page whose filters are invalid: nothing, and no links."""
    return Listing([], newer=None, older=None, first=False)
