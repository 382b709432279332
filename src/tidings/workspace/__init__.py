"""Workspaces, environments and API keys."""
