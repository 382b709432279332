"""Subscription topics, user preferences, and signed one-click unsubscribe."""
