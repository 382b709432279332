"""Recipient profiles."""
