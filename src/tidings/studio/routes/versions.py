"""History of an automation or a template: its saved versions, a diff of any two, restore.

A diff compares the canonical JSON of two versions (keys sorted, two-space indent), line by
line, as `diff -u` would. Restoring a version saves its content as a new version through the
same service call as an ordinary save: the history above it is never rewritten.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.automation import service as automation_service
from tidings.automation.repository import AutomationRepository
from tidings.dependencies import OutboundDep
from tidings.errors import AppError
from tidings.models import AutomationVersion, NotificationVersion
from tidings.notification import service as notification_service
from tidings.notification.repository import NotificationRepository
from tidings.studio.csrf import CheckedForm
from tidings.studio.dependencies import Page, page_path, see_other
from tidings.studio.listing import Listing, ListQuery
from tidings.studio.templating import render_form
from tidings.workspace.service import Scope

router = APIRouter()

PAGE_SIZE = 50
Owner = TypeVar("Owner", contravariant=True)
Row = TypeVar("Row", covariant=True)


@dataclass(frozen=True, slots=True)
class Version:
    """One saved version as the history shows it; `document` is what a diff compares."""

    number: int
    saved_at: datetime
    saved_by: str | None
    restored_from: int | None
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # file, hunk, added, removed or context
    text: str


@dataclass(frozen=True, slots=True)
class History:
    """The versions of one automation or template, read in one session."""

    label: str  # "automation" or "template"
    section: str  # its Studio area, also the first segment of its URLs
    object_id: str
    name: str
    current: int
    read_page: Callable[[int | None, int | None, int], Sequence[Version]]
    read_one: Callable[[int], Version | None]

    @property
    def url(self) -> str:
        return history_url(self.section, self.object_id)

    @property
    def edit_url(self) -> str:
        return page_path(self.section, self.object_id)


def history_url(section: str, object_id: str) -> str:
    return f"{page_path(section, object_id)}/versions"


def _template_version(row: NotificationVersion) -> Version:
    return Version(
        row.version,
        row.created_at,
        row.saved_by,
        row.restored_from,
        notification_service.fields_of(row),
    )


def _automation_version(row: AutomationVersion) -> Version:
    fields = automation_service.DEFINITION_FIELDS
    document = {key: row.definition[key] for key in fields if key in row.definition}
    return Version(row.version, row.created_at, row.saved_by, row.restored_from, document)


class VersionStore(Protocol[Owner, Row]):
    """The version queries a repository answers for one kind of versioned object."""

    def version(self, owner: Owner, number: int, /) -> Row | None: ...

    def version_page(
        self, owner: Owner, after_version: int | None, limit: int, /
    ) -> Sequence[Row]: ...

    def versions_before(
        self, owner: Owner, before_version: int | None, limit: int, /
    ) -> Sequence[Row]: ...


def _history(
    owner: Owner,
    store: VersionStore[Owner, Row],
    as_version: Callable[[Row], Version],
    *,
    label: str,
    section: str,
    object_id: str,
    name: str,
    current: int,
) -> History:
    """The History of `owner`, whose versions `store` reads and `as_version` shows."""

    def read_page(before: int | None, after: int | None, limit: int) -> list[Version]:
        rows = (
            store.version_page(owner, after, limit)
            if after is not None
            else store.versions_before(owner, before, limit)
        )
        return [as_version(row) for row in rows]

    def read_one(number: int) -> Version | None:
        row = store.version(owner, number)
        return as_version(row) if row is not None else None

    return History(label, section, object_id, name, current, read_page, read_one)


def _template_history(session: Session, scope: Scope, notification_id: str) -> History:
    notification = notification_service.get(session, scope, notification_id)
    repository = NotificationRepository(session)
    return _history(
        notification,
        repository,
        _template_version,
        label="template",
        section="notifications",
        object_id=notification_id,
        name=notification.name,
        current=repository.latest_version_number(notification),
    )


def _automation_history(session: Session, scope: Scope, automation_id: str) -> History:
    automation, _ = automation_service.get(session, scope, automation_id)
    return _history(
        automation,
        AutomationRepository(session),
        _automation_version,
        label="automation",
        section="automations",
        object_id=automation_id,
        name=automation.name,
        current=automation.current_version,
    )


READERS: dict[str, Callable[[Session, Scope, str], History]] = {
    "notifications": _template_history,
    "automations": _automation_history,
}


def canonical_lines(document: dict[str, Any]) -> list[str]:
    """A version's content as canonical pretty JSON, one string a line."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def diff_lines(old: Version | None, new: Version) -> list[DiffLine]:
    """The unified diff from `old` (None: from nothing, for a first version) to `new`; empty
    when their content is the same."""
    lines = difflib.unified_diff(
        canonical_lines(old.document) if old is not None else [],
        canonical_lines(new.document),
        fromfile=f"version {old.number}" if old is not None else "nothing",
        tofile=f"version {new.number}",
        lineterm="",
    )
    found = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "context"
        found.append(DiffLine(kind, line))
    return found


def _number(query: ListQuery, name: str, label: str, history: History) -> int | None:
    """A version number typed in the compare form: None when empty or not one."""
    value = query.text(name)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= history.current:
        query.errors[name] = (
            f"{label}: {value!r} is not a version of this {history.label}; "
            f"give a number from 1 to {history.current}."
        )
        return None
    return int(value)


def _flash(request: Request, history: History) -> str | None:
    """What the last restore did, from the URL it redirected to."""
    restored, saved = request.query_params.get("restored", ""), request.query_params.get("saved")
    if not restored.isdigit() or not (saved or "").isdigit():
        return None
    if request.query_params.get("unchanged"):
        return (
            f"Nothing to save: the {history.label} already has the content of "
            f"version {restored} (version {saved})."
        )
    return f"Saved version {saved} with the content of version {restored}."


def _history_page(
    page: Page, section: str, object_id: str, *, error: AppError | None = None
) -> Response:
    with page.database.read() as session:
        history = READERS[section](session, page.scope, object_id)
        query = ListQuery(page.request, history.url, PAGE_SIZE)
        newer = _number(query, "b", "To version", history)
        older = _number(query, "a", "From version", history)
        if newer is None:
            newer = history.current
        if older is None and "a" not in query.errors:
            older = newer - 1 if newer > 1 else None
        old = history.read_one(older) if older is not None else None
        new = history.read_one(newer)
        assert new is not None
        listing: Listing[Version] = query.newest_first(history.read_page, key=attrgetter("number"))
    return render_form(
        page.request,
        "versions.html",
        error,
        400 if query.errors else 200,
        section=history.section,
        history=history,
        listing=listing,
        errors=query.errors,
        older=older,
        newer=newer,
        diff=diff_lines(old, new),
        flash=_flash(page.request, history),
    )


@router.get("/notifications/{notification_id}/versions")
def template_history(notification_id: str, page: Page) -> Response:
    return _history_page(page, "notifications", notification_id)


@router.get("/automations/{automation_id}/versions")
def automation_history(automation_id: str, page: Page) -> Response:
    return _history_page(page, "automations", automation_id)


def _restore(
    page: Page,
    section: str,
    object_id: str,
    number: int,
    restore: Callable[[Session], tuple[Any, AutomationVersion | NotificationVersion, str]],
) -> Response:
    """Save version `number`'s content as a new version, through `restore`; back to the
    history, which says what was saved (`_flash`), or the history with the refusal."""
    try:
        with page.database.write() as (session, _):
            _, saved, outcome = restore(session)
            saved_number = saved.version
    except AppError as exc:
        return _history_page(page, section, object_id, error=exc)
    unchanged = "&unchanged=1" if outcome == "unchanged" else ""
    return see_other(
        f"{history_url(section, object_id)}?restored={number}&saved={saved_number}{unchanged}"
    )


@router.post("/notifications/{notification_id}/versions/{number}/restore")
def restore_template(notification_id: str, number: int, page: Page, form: CheckedForm) -> Response:
    """As POST /notifications/{id}/versions/{version}/restore."""
    return _restore(
        page,
        "notifications",
        notification_id,
        number,
        lambda session: notification_service.restore(session, page.scope, notification_id, number),
    )


@router.post("/automations/{automation_id}/versions/{number}/restore")
def restore_automation(
    automation_id: str, number: int, page: Page, form: CheckedForm, outbound: OutboundDep
) -> Response:
    """As POST /automations/{id}/versions/{version}/restore."""
    return _restore(
        page,
        "automations",
        automation_id,
        number,
        lambda session: automation_service.restore(
            session, page.scope, automation_id, number, outbound=outbound
        ),
    )
