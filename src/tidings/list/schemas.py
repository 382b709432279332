"""Wire shapes of the Lists API, in Courier's spelling (`recipientId`, `listId`, `paging`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.kit.pagination import Paging
from tidings.kit.schemas import StrictModel


class PreferenceDetail(BaseModel):
    """One category's or notification's preference, e.g. `{"status": "OPTED_OUT"}`."""

    model_config = ConfigDict(extra="allow")
    status: Literal["OPTED_IN", "OPTED_OUT", "REQUIRED"]
    channel_preferences: list[dict[str, Any]] | None = None
    rules: list[dict[str, Any]] | None = None


class RecipientPreferences(StrictModel):
    """Courier's per-subscription preferences, keyed by category or notification id."""

    categories: dict[str, PreferenceDetail] | None = None
    notifications: dict[str, PreferenceDetail] | None = None


def preferences_document(preferences: RecipientPreferences | None) -> dict[str, Any] | None:
    """The preferences as stored: exactly the keys the caller sent."""
    if preferences is None:
        return None
    return preferences.model_dump(mode="json", exclude_unset=True)


class ListBody(StrictModel):
    """Body of `PUT /lists/{list_id}`."""

    name: str = Field(min_length=1, max_length=300)
    preferences: RecipientPreferences | None = Field(
        default=None,
        description="List-level default preferences. Not stored yet: send null or leave out.",
    )


class SubscriptionRecipient(StrictModel):
    recipientId: str = Field(min_length=1, max_length=300)
    preferences: RecipientPreferences | None = None


class SubscriptionsBody(StrictModel):
    """Body of `PUT` (replace all) and `POST` (add) on `/lists/{list_id}/subscriptions`."""

    recipients: list[SubscriptionRecipient]


class SubscribeUserBody(StrictModel):
    """Optional body of `PUT /lists/{list_id}/subscriptions/{user_id}`."""

    preferences: RecipientPreferences | None = None


class ProfileListItem(StrictModel):
    listId: str = Field(min_length=1, max_length=300)
    preferences: RecipientPreferences | None = None


class ProfileListsBody(StrictModel):
    """Body of `POST /profiles/{user_id}/lists`."""

    lists: list[ProfileListItem]


class ListView(BaseModel):
    id: str
    name: str
    created: str
    updated: str


class ListPage(BaseModel):
    items: list[ListView]
    paging: Paging


class SubscriptionView(BaseModel):
    recipientId: str
    created: str
    preferences: dict[str, Any] | None


class SubscriptionPage(BaseModel):
    items: list[SubscriptionView]
    paging: Paging


class UserListView(BaseModel):
    id: str
    name: str
    created: str
    updated: str
    preferences: dict[str, Any] | None


class UserListPage(BaseModel):
    results: list[UserListView]
    paging: Paging


class StatusResponse(BaseModel):
    status: Literal["SUCCESS"] = "SUCCESS"
