"""Users whose audiences may have changed in this unit of work, noted by the writes that
change them (a profile saved through the API, a list subscription) and refreshed once,
just before the commit (`membership.refresh_touched`, a hook of `Database.write`).

An event's processing refreshes its user itself, to say what it did in the event's record.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from tidings.audience.conditions import Needs

_TOUCHED = "tidings.audience_touched"


def touch(session: Session, environment_id: str, user_ids: Iterable[str], changed: Needs) -> None:
    """Note that what `changed` says changed for these users."""
    touched: dict[tuple[str, str], Needs] = session.info.setdefault(_TOUCHED, {})
    for user_id in user_ids:
        key = (environment_id, user_id)
        touched[key] = touched[key] | changed if key in touched else changed


def take(session: Session) -> dict[tuple[str, str], Needs]:
    """The users noted so far, and what changed for each; forgotten once taken."""
    taken: dict[tuple[str, str], Needs] = session.info.pop(_TOUCHED, {})
    return taken
