"""Audiences: saved conditions over profiles and event history, and their members."""
