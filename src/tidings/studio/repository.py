"""The SQL that only Studio needs: admins, sessions, and joins the API does not offer."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from tidings.errors import BadRequest
from tidings.kit.sql import Repository, execute_counting
from tidings.models import AdminSession, AdminSignInToken, AdminUser, Environment

# The step editor's pickers list at most this many ids of each kind.
PICKER_LIMIT = 500


class StudioRepository(Repository):
    def admin_by_email(self, email: str) -> AdminUser | None:
        return self.session.scalars(select(AdminUser).where(AdminUser.email == email)).first()

    def count_admins(self) -> int:
        return int(self.session.scalar(select(func.count(AdminUser.id))) or 0)

    def sign_in_token(self, token_hash: str, for_update: bool = False) -> AdminSignInToken | None:
        query = select(AdminSignInToken).where(AdminSignInToken.token_hash == token_hash)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def session_with_admin(
        self, token_hash: str
    ) -> tuple[AdminSession, AdminUser, Environment] | None:
        row = self.session.execute(
            select(AdminSession, AdminUser, Environment)
            .join(AdminUser, AdminUser.id == AdminSession.admin_user_id)
            .join(Environment, Environment.id == AdminSession.environment_id)
            .where(AdminSession.token_hash == token_hash)
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    def delete_session(self, token_hash: str) -> None:
        execute_counting(
            self.session, delete(AdminSession).where(AdminSession.token_hash == token_hash)
        )

    def delete_sessions_of(self, admin_id: str) -> None:
        execute_counting(
            self.session, delete(AdminSession).where(AdminSession.admin_user_id == admin_id)
        )

    def environment(self, workspace_id: str, name: str) -> Environment:
        environment = self.session.scalars(
            select(Environment).where(
                Environment.workspace_id == workspace_id, Environment.name == name
            )
        ).first()
        if environment is None:
            raise BadRequest(
                f"Unknown environment {name!r}: use test or production.", field="environment"
            )
        return environment

    def picker_ids(self, environment_id: str) -> dict[str, list[str]]:
        """The ids the automation step editor offers: templates, lists, live automations."""
        # Imported here: `tidings admin create` uses this module for its admins, and loads no
        # other tables (tidings.models).
        from tidings.models import Automation, Notification, RecipientList

        queries = {
            "templates": select(Notification.notification_id)
            .where(Notification.environment_id == environment_id)
            .order_by(Notification.notification_id),
            "lists": select(RecipientList.list_id)
            .where(RecipientList.environment_id == environment_id)
            .order_by(RecipientList.list_id),
            "automations": select(Automation.automation_id)
            .where(Automation.environment_id == environment_id, Automation.deleted_at.is_(None))
            .order_by(Automation.automation_id),
        }
        return {
            name: list(self.session.scalars(query.limit(PICKER_LIMIT)).all())
            for name, query in queries.items()
        }
