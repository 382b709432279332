"""Rendering: Liquid templates per channel, and Courier's inline content (Elemental)."""
