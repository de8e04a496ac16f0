"""Application services: the use cases (submit, claim, report, reap...) over the ports.

Every service method takes an explicit ``Identity``; nothing here knows HTTP or SQL.
"""
