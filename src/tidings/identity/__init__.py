"""A user's identity across the domains: merging ids into a user, and erasure."""
