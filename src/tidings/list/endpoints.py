from __future__ import annotations

from fastapi import APIRouter, Response

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.kit.pagination import PageOf20
from tidings.kit.time import isoformat
from tidings.list import service
from tidings.list.schemas import (
    ListBody,
    ListPage,
    ListView,
    ProfileListsBody,
    StatusResponse,
    SubscribeUserBody,
    SubscriptionPage,
    SubscriptionsBody,
    SubscriptionView,
    UserListPage,
    UserListView,
    preferences_document,
)
from tidings.models import RecipientList
from tidings.routing import ApiRoute

router = APIRouter(tags=["lists"], route_class=ApiRoute)


def _no_content() -> Response:
    return Response(status_code=204)


def _view(recipient_list: RecipientList) -> ListView:
    return ListView(
        id=recipient_list.list_id,
        name=recipient_list.name,
        created=isoformat(recipient_list.created_at) or "",
        updated=isoformat(recipient_list.updated_at) or "",
    )


@router.get("/lists", response_model=ListPage)
def find_lists(
    caller: Caller, session: ReadSession, paging: PageOf20, pattern: str | None = None
) -> ListPage:
    """Lists in creation order, optionally matching `pattern` (`acme.*`, `acme.**`)."""
    found = paging.page(
        service.find_lists(session, caller, pattern, paging.after_id, paging.rows_to_read)
    )
    return ListPage(items=[_view(row) for row in found.rows], paging=found.paging())


@router.get("/lists/{list_id}", response_model=ListView)
def get_list(list_id: str, caller: Caller, session: ReadSession) -> ListView:
    return _view(service.get_list(session, caller, list_id))


@router.put("/lists/{list_id}", status_code=204)
def put_list(list_id: str, body: ListBody, caller: Caller, database: DatabaseDep) -> Response:
    """Create the list, or rename it. Answers 204 either way, as Courier does."""
    preferences = preferences_document(body.preferences)
    with database.write() as (session, _):
        service.put_list(session, caller, list_id, body.name, preferences)
    return _no_content()


@router.delete("/lists/{list_id}", status_code=204)
def delete_list(list_id: str, caller: Caller, database: DatabaseDep) -> Response:
    """Delete the list and all its subscriptions."""
    with database.write() as (session, _):
        service.delete_list(session, caller, list_id)
    return _no_content()


@router.put("/lists/{list_id}/restore", status_code=204)
def restore_list(list_id: str, caller: Caller, session: ReadSession) -> Response:
    """Deleted lists are gone for good here: 204 for a live list, 404 otherwise."""
    service.restore_list(session, caller, list_id)
    return _no_content()


@router.get("/lists/{list_id}/subscriptions", response_model=SubscriptionPage)
def list_subscriptions(
    list_id: str, caller: Caller, session: ReadSession, paging: PageOf20
) -> SubscriptionPage:
    found = paging.page(
        service.list_subscriptions(session, caller, list_id, paging.after_id, paging.rows_to_read)
    )
    return SubscriptionPage(
        items=[
            SubscriptionView(
                recipientId=row.user_id,
                created=isoformat(row.created_at) or "",
                preferences=row.preferences,
            )
            for row in found.rows
        ],
        paging=found.paging(),
    )


def _subscribers(body: SubscriptionsBody) -> list[service.SubscriberSpec]:
    return [
        service.SubscriberSpec(item.recipientId, preferences_document(item.preferences))
        for item in body.recipients
    ]


@router.put("/lists/{list_id}/subscriptions", status_code=204)
def replace_subscriptions(
    list_id: str, body: SubscriptionsBody, caller: Caller, database: DatabaseDep
) -> Response:
    """Make `recipients` the list's only subscribers, creating the list if missing."""
    with database.write() as (session, _):
        service.replace_subscribers(session, caller, list_id, _subscribers(body))
    return _no_content()


@router.post("/lists/{list_id}/subscriptions", status_code=204)
def add_subscriptions(
    list_id: str, body: SubscriptionsBody, caller: Caller, database: DatabaseDep
) -> Response:
    """Subscribe `recipients` too, creating the list if missing; other subscribers stay."""
    with database.write() as (session, _):
        service.add_subscribers(session, caller, list_id, _subscribers(body))
    return _no_content()


@router.put("/lists/{list_id}/subscriptions/{user_id}", status_code=204)
def subscribe_user(
    list_id: str,
    user_id: str,
    caller: Caller,
    database: DatabaseDep,
    body: SubscribeUserBody | None = None,
) -> Response:
    """Subscribe one user, creating the list if missing. The body is optional."""
    preferences = preferences_document(body.preferences) if body is not None else None
    with database.write() as (session, _):
        service.subscribe(session, caller, list_id, user_id, preferences)
    return _no_content()


@router.delete("/lists/{list_id}/subscriptions/{user_id}", status_code=204)
def unsubscribe_user(list_id: str, user_id: str, caller: Caller, database: DatabaseDep) -> Response:
    """Unsubscribe one user. Idempotent: 204 also when they were not subscribed."""
    with database.write() as (session, _):
        service.unsubscribe(session, caller, list_id, user_id)
    return _no_content()


@router.get("/profiles/{user_id}/lists", response_model=UserListPage)
def get_user_lists(
    user_id: str, caller: Caller, session: ReadSession, paging: PageOf20
) -> UserListPage:
    """The lists the user is subscribed to, with the subscription's preferences."""
    rows = service.user_lists(session, caller, user_id, paging.after_id, paging.rows_to_read)
    found = paging.page(rows, key=lambda row: row[0].id)
    return UserListPage(
        results=[
            UserListView(**_view(recipient_list).model_dump(), preferences=subscription.preferences)
            for subscription, recipient_list in found.rows
        ],
        paging=found.paging(),
    )


@router.post("/profiles/{user_id}/lists", response_model=StatusResponse)
def subscribe_user_to_lists(
    user_id: str, body: ProfileListsBody, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Subscribe the user to each list, creating lists that do not exist."""
    lists = [(item.listId, preferences_document(item.preferences)) for item in body.lists]
    with database.write() as (session, _):
        service.subscribe_user_to_lists(session, caller, user_id, lists)
    return StatusResponse()


@router.delete("/profiles/{user_id}/lists", response_model=StatusResponse)
def unsubscribe_user_from_all(
    user_id: str, caller: Caller, database: DatabaseDep
) -> StatusResponse:
    """Remove all the user's list subscriptions."""
    with database.write() as (session, _):
        service.unsubscribe_user_from_all(session, caller, user_id)
    return StatusResponse()
