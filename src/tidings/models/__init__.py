"""Every ORM table, in one package so related tables never import each other in circles.

A name is imported from its module when it is first asked for (PEP 562), so that a process
loads only the tables it uses: the short commands (`tidings keys`, `tidings admin create`)
use the workspace's and the admins'. `Base` stands for the whole schema: asking for it loads
every module, so that its metadata holds every table (Alembic, tests/test_schema.py).

A row is written only once the tables its foreign keys name are loaded (SQLAlchemy's flush
resolves them): the workspace's tables, which every other table names, are loaded with the
package, and a module whose keys name another module's tables imports that module.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tidings.models.workspace import ApiKey, Environment, Workspace

if TYPE_CHECKING:
    from tidings.models.admin import AdminSession, AdminSignInToken, AdminUser
    from tidings.models.analytics import MessageMetric, Metric, MetricSpan
    from tidings.models.audience import (
        Audience,
        AudienceCheck,
        AudienceMember,
        ListSubscription,
        RecipientList,
        SubscriptionTopic,
        UserPreference,
    )
    from tidings.models.automation import (
        Automation,
        AutomationBatch,
        AutomationBatchItem,
        AutomationRun,
        AutomationRunStep,
        AutomationRunWait,
        AutomationSchedule,
        AutomationTrigger,
        AutomationVersion,
        BatchStatus,
        RunStatus,
        ThrottleWindow,
    )
    from tidings.models.base import Base
    from tidings.models.broadcast import Broadcast, BroadcastStatus
    from tidings.models.event import Event, EventStatus
    from tidings.models.inbox import InboxMessage
    from tidings.models.message import (
        DeliveryStatus,
        IdempotencyRecord,
        Message,
        MessageDelivery,
        MessageEvent,
        MessageStatus,
    )
    from tidings.models.notification import Notification, NotificationVersion
    from tidings.models.profile import Profile, ProfileAlias
    from tidings.models.provider_config import ProviderConfiguration
    from tidings.models.replay import AutomationReplay, AutomationReplayEvent, ReplayStatus
    from tidings.models.source import SignedSource
    from tidings.models.suppression import SoftBounceStreak, Suppression, SuppressionReason
    from tidings.models.tenant import Tenant, TenantMembership
    from tidings.models.webhook_out import (
        WebhookDelivery,
        WebhookDeliveryStatus,
        WebhookEndpoint,
        WebhookSubscription,
    )
    from tidings.models.worker import WorkerLease

# The names each module defines, but `Base` (models/base.py) and the workspace's.
_NAMES = {
    "admin": ("AdminSession", "AdminSignInToken", "AdminUser"),
    "analytics": ("MessageMetric", "Metric", "MetricSpan"),
    "audience": (
        "Audience",
        "AudienceCheck",
        "AudienceMember",
        "ListSubscription",
        "RecipientList",
        "SubscriptionTopic",
        "UserPreference",
    ),
    "automation": (
        "Automation",
        "AutomationBatch",
        "AutomationBatchItem",
        "AutomationRun",
        "AutomationRunStep",
        "AutomationRunWait",
        "AutomationSchedule",
        "AutomationTrigger",
        "AutomationVersion",
        "BatchStatus",
        "RunStatus",
        "ThrottleWindow",
    ),
    "broadcast": ("Broadcast", "BroadcastStatus"),
    "event": ("Event", "EventStatus"),
    "inbox": ("InboxMessage",),
    "message": (
        "DeliveryStatus",
        "IdempotencyRecord",
        "Message",
        "MessageDelivery",
        "MessageEvent",
        "MessageStatus",
    ),
    "notification": ("Notification", "NotificationVersion"),
    "profile": ("Profile", "ProfileAlias"),
    "provider_config": ("ProviderConfiguration",),
    "replay": ("AutomationReplay", "AutomationReplayEvent", "ReplayStatus"),
    "source": ("SignedSource",),
    "suppression": ("SoftBounceStreak", "Suppression", "SuppressionReason"),
    "tenant": ("Tenant", "TenantMembership"),
    "webhook_out": (
        "WebhookDelivery",
        "WebhookDeliveryStatus",
        "WebhookEndpoint",
        "WebhookSubscription",
    ),
    "worker": ("WorkerLease",),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}

__all__ = [
    "AdminSession",
    "AdminSignInToken",
    "AdminUser",
    "ApiKey",
    "Audience",
    "AudienceCheck",
    "AudienceMember",
    "Automation",
    "AutomationBatch",
    "AutomationBatchItem",
    "AutomationReplay",
    "AutomationReplayEvent",
    "AutomationRun",
    "AutomationRunStep",
    "AutomationRunWait",
    "AutomationSchedule",
    "AutomationTrigger",
    "AutomationVersion",
    "Base",
    "BatchStatus",
    "Broadcast",
    "BroadcastStatus",
    "DeliveryStatus",
    "Environment",
    "Event",
    "EventStatus",
    "IdempotencyRecord",
    "InboxMessage",
    "ListSubscription",
    "Message",
    "MessageDelivery",
    "MessageEvent",
    "MessageMetric",
    "MessageStatus",
    "Metric",
    "MetricSpan",
    "Notification",
    "NotificationVersion",
    "Profile",
    "ProfileAlias",
    "ProviderConfiguration",
    "RecipientList",
    "ReplayStatus",
    "RunStatus",
    "SignedSource",
    "SoftBounceStreak",
    "SubscriptionTopic",
    "Suppression",
    "SuppressionReason",
    "Tenant",
    "TenantMembership",
    "ThrottleWindow",
    "UserPreference",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookSubscription",
    "WorkerLease",
    "Workspace",
]


def __getattr__(name: str) -> Any:
    if name == "Base":
        for module in _NAMES:
            import_module(f"{__name__}.{module}")
        value = import_module(f"{__name__}.base").Base
    elif name in _MODULE_OF:
        value = getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
