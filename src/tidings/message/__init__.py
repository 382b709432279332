"""Messages: the Send API, routing, delivery through providers, and the logs."""
