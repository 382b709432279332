"""What a worker process holds while it carries out jobs: its context and its lease."""
