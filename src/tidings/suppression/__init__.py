"""The suppression list: addresses Tidings does not send to."""
