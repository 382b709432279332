"""Tenants (Segment groups) and their members."""
