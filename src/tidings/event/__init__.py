"""The events inbox: processing each event, and reading events back."""
