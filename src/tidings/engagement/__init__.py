"""Open and click tracking: the tracked links and open pixel of HTML email, the public
endpoints they lead to, the machine-open rule, and the settings per template and environment
(docs/deliverability.md, "Open and click tracking")."""
