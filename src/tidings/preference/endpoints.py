"""Subscription topics and user preferences.

Topics are managed in Courier's Studio; here they have an API of their own under
`/preferences/topics`. The public one-click unsubscribe pages are tidings.unsubscribe's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.errors import BadRequest
from tidings.kit.api import creates_or_replaces, from_row
from tidings.kit.pagination import PageOf100, decode_cursor
from tidings.models import SubscriptionTopic
from tidings.preference import service
from tidings.preference.schemas import (
    MessageResponse,
    PreferenceBody,
    PreferenceList,
    TopicBody,
    TopicList,
    TopicPreferenceResponse,
    TopicResponse,
)
from tidings.routing import ApiRoute

router = APIRouter(route_class=ApiRoute)

TopicId = Annotated[str, Path(max_length=200, description="The subscription topic id.")]
UserId = Annotated[str, Path(max_length=300)]
Limit = Annotated[int, Query(ge=1, le=100)]
TenantId = Annotated[
    str | None, Query(description="Not supported: preferences are per user, not per tenant.")
]


def _no_tenant(tenant_id: str | None) -> None:
    if tenant_id is not None:
        raise BadRequest(
            "Tenant-scoped preferences are not supported: a user's preferences apply in every "
            "tenant. Leave out tenant_id.",
            code="tenant_preferences_unsupported",
            field="tenant_id",
        )


def _topic(topic: SubscriptionTopic) -> TopicResponse:
    return from_row(TopicResponse, topic)


# Topics


@router.get("/preferences/topics", response_model=TopicList, tags=["preferences"])
def list_topics(caller: Caller, session: ReadSession, paging: PageOf100) -> TopicList:
    found = paging.page(service.list_topics(session, caller, paging.after_id, paging.rows_to_read))
    return TopicList(items=[_topic(row) for row in found.rows], paging=found.paging())


@router.put(
    "/preferences/topics/{topic_id}",
    **creates_or_replaces(TopicResponse),
    tags=["preferences"],
)
def put_topic(
    topic_id: TopicId, body: TopicBody, caller: Caller, database: DatabaseDep, response: Response
) -> TopicResponse:
    """Create the topic (201) or replace its name and default status (200)."""
    with database.write() as (session, _):
        topic, created = service.save_topic(
            session, caller, topic_id, body.name, body.default_status
        )
        view = _topic(topic)
    response.status_code = 201 if created else 200
    return view


@router.get("/preferences/topics/{topic_id}", response_model=TopicResponse, tags=["preferences"])
def get_topic(topic_id: TopicId, caller: Caller, session: ReadSession) -> TopicResponse:
    return _topic(service.get_topic(session, caller, topic_id))


@router.delete("/preferences/topics/{topic_id}", status_code=204, tags=["preferences"])
def delete_topic(topic_id: TopicId, caller: Caller, database: DatabaseDep) -> Response:
    """Delete the topic and every user's choice for it; 409 while a notification uses it."""
    with database.write() as (session, _):
        service.delete_topic(session, caller, topic_id)
    return Response(status_code=204)


# User preferences


@router.get("/users/{user_id}/preferences", response_model=PreferenceList, tags=["preferences"])
def list_preferences(
    user_id: UserId,
    caller: Caller,
    session: ReadSession,
    cursor: str | None = None,
    limit: Limit = 100,
    tenant_id: TenantId = None,
) -> PreferenceList:
    """Every topic, with the user's status or, where they made no choice, the default."""
    _no_tenant(tenant_id)
    found = service.list_preferences(session, caller, user_id, decode_cursor(cursor), limit)
    return PreferenceList(items=found.rows, paging=found.paging())


@router.get(
    "/users/{user_id}/preferences/{topic_id}",
    response_model=TopicPreferenceResponse,
    tags=["preferences"],
)
def get_preference(
    user_id: UserId,
    topic_id: TopicId,
    caller: Caller,
    session: ReadSession,
    tenant_id: TenantId = None,
) -> TopicPreferenceResponse:
    _no_tenant(tenant_id)
    return TopicPreferenceResponse(topic=service.get_preference(session, caller, user_id, topic_id))


@router.put(
    "/users/{user_id}/preferences/{topic_id}", response_model=MessageResponse, tags=["preferences"]
)
def put_preference(
    user_id: UserId,
    topic_id: TopicId,
    body: PreferenceBody,
    caller: Caller,
    database: DatabaseDep,
    tenant_id: TenantId = None,
) -> MessageResponse:
    """Set the user's status for the topic; the routing fields are replaced, not merged."""
    _no_tenant(tenant_id)
    with database.write() as (session, _):
        service.set_preference(
            session,
            caller,
            user_id,
            topic_id,
            body.topic.status,
            body.topic.has_custom_routing,
            body.topic.custom_routing,
        )
    return MessageResponse()


@router.delete("/users/{user_id}/preferences/{topic_id}", status_code=204, tags=["preferences"])
def delete_preference(
    user_id: UserId,
    topic_id: TopicId,
    caller: Caller,
    database: DatabaseDep,
    tenant_id: TenantId = None,
) -> Response:
    """Forget the user's choice, so the topic's default applies again."""
    _no_tenant(tenant_id)
    with database.write() as (session, _):
        service.delete_preference(session, caller, user_id, topic_id)
    return Response(status_code=204)
