"""The two timestamps that end most tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import UTCDateTime

# Columns with a higher sort order come last in their table; the default is 0.
LAST = 1


class Stamped:
    """The columns that end a table whose rows are written again after they are made: when
    the row was made and when it last changed. `sort_order` keeps them last in the table,
    where the migrations created them."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), sort_order=LAST)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), sort_order=LAST)
