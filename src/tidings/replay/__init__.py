"""Replay: an automation's stored Segment events run again through a version or a draft in a
sandbox, on a process of its own, and compared with what the automation did."""
