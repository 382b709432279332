"""Delivery-status callbacks: SendGrid's Event Webhook and Twilio's status callbacks move
messages to DELIVERED or UNDELIVERABLE."""
