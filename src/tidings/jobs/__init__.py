"""The job engine: Huey, with the sweeper that makes lost jobs harmless."""
