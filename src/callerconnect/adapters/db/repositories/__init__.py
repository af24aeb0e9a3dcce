"""Repositories: the only code that turns rows into domain objects and back, one
module a concept (CAD events, calls, the outbox, phones never texted, send slots)."""
