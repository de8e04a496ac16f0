"""Read models: pure functions from aggregate state to view rows, and their rebuild.

Views the hot path reads are written in the same transaction as the events; each row
is a function of its aggregate's state, so rebuilding from the log gives the same rows.
"""
