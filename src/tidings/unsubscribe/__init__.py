"""One-click unsubscribe: the public pages of the links in emails and what they do."""
