"""Numbered, forward-only SQL migrations: ``postgres/NNNN_name.sql`` and
``sqlite/NNNN_name.sql`` with the same numbers and names (a test checks)."""
