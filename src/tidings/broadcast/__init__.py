"""Broadcasts: a template sent to every member of a list, an audience or a tenant."""
