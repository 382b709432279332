"""The in-app inbox provider."""
