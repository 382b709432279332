"""chat providers."""
