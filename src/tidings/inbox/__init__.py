"""The in-app inbox: messages stored for a user, read through per-user tokens, streamed live."""
