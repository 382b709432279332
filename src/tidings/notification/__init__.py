"""Notification templates."""
