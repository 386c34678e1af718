"""Alembic revisions for the sink tables (a package so a wheel ships them)."""
