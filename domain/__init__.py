"""Fleetlog's domain: aggregates, their events and transition tables.

Imports only the standard library, pydantic and ``eventsourcing.domain``: no clock,
no randomness, no I/O. Time and random samples come in as command arguments.
"""
