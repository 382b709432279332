"""Alembic migrations, applied by `tidings serve` and `tidings migrate`."""
