"""Message metrics: the hourly rollup of sends, vendors' feedback, engagement and
unsubscribes per template, automation and channel, and its reads (docs/deliverability.md)."""
