"""The names a workspace is cut into, without the machinery: the CLI's options need them
before any database code is loaded."""

ENVIRONMENTS = ("test", "production")

# What a key may call: a secret key the whole API; an ingest key only the ingest endpoints
# (the Tracking API, /inbound/segment, /debug), so it can sit in a web page.
SECRET = "secret"
INGEST = "ingest"
KEY_SCOPES = (SECRET, INGEST)
