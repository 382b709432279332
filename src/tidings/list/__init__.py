"""Lists (Courier's Lists API): named lists of subscribed users, addressed by id or pattern."""
