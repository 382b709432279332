"""The event table: every query on events, the ingest insert included (repository.py).
Below the domains that read events (audience membership, identity, the scrape); what an
event does is tidings.event's."""
