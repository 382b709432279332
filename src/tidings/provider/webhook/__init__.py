"""webhook providers."""
