"""Studio: the server-rendered web UI (Jinja2 + htmx), mounted at /studio."""
