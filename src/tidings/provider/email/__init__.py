"""email providers."""
