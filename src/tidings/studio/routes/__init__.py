"""Studio pages, one module per area."""
