"""Ingest: the Segment destination endpoint and Courier's inbound track."""
