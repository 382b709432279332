"""Outbound webhooks: customers' endpoints, told of what happens to their messages, runs and
events, signed in the Standard Webhooks format (docs/deliverability.md)."""
