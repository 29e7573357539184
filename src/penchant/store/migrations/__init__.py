"""Alembic migrations for both SQL backends; `engine.migrate` runs them."""
