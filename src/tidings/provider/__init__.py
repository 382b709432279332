"""Providers: the typed registry of everything that delivers a message."""
