"""Automation templates: definitions, their saved versions, and `tidings apply`."""
