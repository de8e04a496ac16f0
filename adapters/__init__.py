"""Adapters: the event store (SQLite, PostgreSQL), system ports, the CLI and the demo.

The only layer that imports drivers (sqlite3, psycopg). Driver errors are translated
to coordinator errors at one choke point per backend.
"""
