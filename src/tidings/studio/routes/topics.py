"""Subscription topics: the list, create, edit (every field of the topic) and delete, through
the preference service that /preferences/topics calls."""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from tidings.errors import AppError, BadRequest
from tidings.preference import service
from tidings.preference.endpoints import TopicId
from tidings.preference.repository import PreferenceRepository
from tidings.preference.schemas import DefaultStatus, TopicBody
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import ListQuery
from tidings.studio.templating import render_form
from tidings.studio.validation import validated

router = APIRouter()

PAGE_SIZE = 100
STATUSES: tuple[str, ...] = get_args(DefaultStatus)
# The templates named on a topic's page, as delete_topic names them when it refuses.
SHOWN_TEMPLATES = 20
FLASHES = {"created": "Topic created.", "saved": "Saved.", "deleted": "Topic deleted."}
_TOPIC_ID = TypeAdapter(TopicId)


def topic_path(topic_id: str) -> str:
    return page_path("topics", topic_id)


def check_topic_id(topic_id: str) -> None:
    """A topic id the API can address: as its path parameter, one segment of 1 to 200
    characters."""
    problem = None
    if not topic_id or "/" in topic_id:
        problem = "must be 1 to 200 characters without `/` (it is one segment of the API's URLs)"
    else:
        try:
            _TOPIC_ID.validate_python(topic_id)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
    if problem is not None:
        raise BadRequest(
            f"topic_id {problem}. Use an id such as `product-updates`.",
            code="invalid_topic_id",
            field="topic_id",
        )


def _topic_body(values: dict[str, str]) -> TopicBody:
    """The form as the body of PUT /preferences/topics/{topic_id}."""
    return validated(
        TopicBody,
        {"name": values["name"], "default_status": values["default_status"]},
        f"default_status is one of {', '.join(STATUSES)}.",
    )


def _topics_page(
    page: Page,
    *,
    new: dict[str, str] | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    query = ListQuery(page.request, f"{PREFIX}/topics", PAGE_SIZE)
    with page.database.read() as session:
        listing = query.in_order(
            lambda after_id, limit: service.list_topics(session, page.scope, after_id, limit)
        )
    return query.render(
        "topics.html",
        listing,
        section="topics",
        statuses=STATUSES,
        new=new or {"topic_id": "", "name": "", "default_status": "OPTED_IN"},
        refused=error,
        flash=flash,
    )


@router.get("/topics")
def list_topics(page: Page) -> Response:
    return _topics_page(page, flash=page.flash(FLASHES))


@router.post("/topics")
def create_topic(page: Page, form: CheckedForm) -> Response:
    """A new topic, as PUT /preferences/topics/{topic_id}; refused when the id is taken
    (PUT would replace that topic)."""
    new = {
        "topic_id": form_text(form, "topic_id").strip(),
        "name": form_text(form, "name").strip(),
        "default_status": form_text(form, "default_status"),
    }
    try:
        check_topic_id(new["topic_id"])
        body = _topic_body(new)
        with page.database.write() as (session, _):
            if PreferenceRepository(session).topic(page.scope.environment_id, new["topic_id"]):
                raise BadRequest(
                    f"A topic {new['topic_id']!r} exists already: open it to edit it.",
                    code="topic_exists",
                    field="topic_id",
                )
            service.save_topic(session, page.scope, new["topic_id"], body.name, body.default_status)
    except AppError as exc:
        return _topics_page(page, new=new, error=exc)
    return see_other(topic_path(new["topic_id"]), "created")


def _topic_page(
    page: Page,
    topic_id: str,
    *,
    values: dict[str, str] | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        topic = service.get_topic(session, page.scope, topic_id)
        used_by = PreferenceRepository(session).notifications_using(
            page.scope.environment_id, topic_id, limit=SHOWN_TEMPLATES + 1
        )
    return render_form(
        page.request,
        "topic.html",
        error,
        section="topics",
        topic=topic,
        values=values or {"name": topic.name, "default_status": topic.default_status},
        statuses=STATUSES,
        used_by=used_by[:SHOWN_TEMPLATES],
        more_users=len(used_by) > SHOWN_TEMPLATES,
        flash=flash,
    )


@router.post("/topics/{topic_id:path}/save")
def save_topic(topic_id: str, page: Page, form: CheckedForm) -> Response:
    """As PUT /preferences/topics/{topic_id} on a topic that exists: its name and default."""
    values = {
        "name": form_text(form, "name").strip(),
        "default_status": form_text(form, "default_status"),
    }
    try:
        body = _topic_body(values)
        with page.database.write() as (session, _):
            service.get_topic(session, page.scope, topic_id)
            service.save_topic(session, page.scope, topic_id, body.name, body.default_status)
    except AppError as exc:
        return _topic_page(page, topic_id, values=values, error=exc)
    return see_other(topic_path(topic_id), "saved")


@router.post("/topics/{topic_id:path}/delete")
def delete_topic(topic_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /preferences/topics/{topic_id}: refused (409) while a template uses it."""
    try:
        with page.database.write() as (session, _):
            service.delete_topic(session, page.scope, topic_id)
    except AppError as exc:
        return _topic_page(page, topic_id, error=exc)
    return see_other(f"{PREFIX}/topics", "deleted")


@router.get("/topics/{topic_id:path}")
def topic_detail(topic_id: str, page: Page) -> Response:
    return _topic_page(page, topic_id, flash=page.flash(FLASHES))
