"""The migration that adds key scopes: every key that existed before is a secret key."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from tidings.config import Settings
from tidings.migrate import alembic_config, upgrade
from tidings.runtime import build_runtime
from tidings.workspace import service as workspace_service

BEFORE_SCOPES = "5c1f0e7a9b21"


def test_keys_made_before_scopes_become_secret_keys(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        config = alembic_config()
        with runtime.database.write_engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, BEFORE_SCOPES)
            connection.commit()
            connection.execute(
                text(
                    "INSERT INTO workspace (id, name, created_at) "
                    "VALUES ('ws_1', 'Old', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO environment (id, workspace_id, name, created_at) "
                    "VALUES ('env_1', 'ws_1', 'test', '2026-01-01 00:00:00')"
                )
            )
            ciphertext = runtime.cipher.encrypt("tdg_test_old")
            connection.execute(
                text(
                    "INSERT INTO api_key (id, workspace_id, environment_id, key_hash, "
                    "key_ciphertext, key_hint, created_at) VALUES ('key_old', 'ws_1', 'env_1', "
                    ":hash, :ciphertext, '…old', '2026-01-01 00:00:00')"
                ),
                {"hash": "0" * 64, "ciphertext": ciphertext},
            )
            connection.commit()
        upgrade(runtime.database)
        with runtime.database.read() as session:
            (old,) = workspace_service.list_keys(session, runtime.cipher)
        assert old.id == "key_old"
        assert old.scope == "secret"
    finally:
        runtime.close()
