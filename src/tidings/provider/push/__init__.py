"""push providers."""
