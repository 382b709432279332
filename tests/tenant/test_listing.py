"""The paged list of tenants Studio shows, filtered by id prefix or name."""

from __future__ import annotations

from tidings.runtime import Runtime
from tidings.tenant import service
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import Scope, default_workspace


def _scope(runtime: Runtime, name: str) -> Scope:
    with runtime.database.read() as session:
        workspace = default_workspace(session)
        environment = next(
            row
            for row in WorkspaceRepository(session).environments(workspace.id)
            if row.name == name
        )
        return Scope(workspace.id, environment.id, name, "")


def _ids(
    runtime: Runtime, scope: Scope, text: str | None, after_id: int | None = None
) -> list[str]:
    with runtime.database.read() as session:
        rows = service.list_tenants(session, scope, text, after_id, 10)
        return [row.tenant_id for row in rows]


def test_tenants_filter_by_id_prefix_or_name_and_page(runtime: Runtime) -> None:
    test, production = _scope(runtime, "test"), _scope(runtime, "production")
    with runtime.database.write() as (session, _):
        service.apply_group(session, test, "acme", {"name": "Acme Inc"}, "ada")
        service.apply_group(session, test, "globex", {"name": "Globex 100%"}, None)
        service.apply_group(session, test, "acme_eu", {}, None)
        service.apply_group(session, production, "acme-prod", {"name": "Acme"}, None)

    assert _ids(runtime, test, None) == ["acme", "globex", "acme_eu"]
    assert _ids(runtime, test, "acme") == ["acme", "acme_eu"]
    assert _ids(runtime, test, "INC") == ["acme"]
    # `%` and `_` are matched as themselves, not as wildcards.
    assert _ids(runtime, test, "100%") == ["globex"]
    assert _ids(runtime, test, "acme_") == ["acme_eu"]
    assert _ids(runtime, test, "nobody") == []
    with runtime.database.read() as session:
        first = service.list_tenants(session, test, None, None, 1)
    assert _ids(runtime, test, None, first[0].id) == ["globex", "acme_eu"]
    assert _ids(runtime, production, "acme") == ["acme-prod"]
