"""Every ORM table, in one package so related tables never import each other in circles."""

from tidings.models.base import Base
from tidings.models.event import Event, EventStatus
from tidings.models.profile import Profile
from tidings.models.tenant import Tenant, TenantMembership
from tidings.models.workspace import ApiKey, Environment, Workspace

__all__ = [
    "ApiKey",
    "Base",
    "Environment",
    "Event",
    "EventStatus",
    "Profile",
    "Tenant",
    "TenantMembership",
    "Workspace",
]
