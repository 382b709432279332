"""Tidings: a self-hosted notification platform fed by Segment."""

__version__ = "0.1.0"
