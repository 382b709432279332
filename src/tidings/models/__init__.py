"""Every ORM table, in one package so related tables never import each other in circles."""

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
from tidings.models.workspace import ApiKey, Environment, Workspace

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
