"""The ClickHouse side of analytics (docs/analytics-design.md): settings and client
(``client``), the schema's migrations and the rebuild's swap (``migrate``), the sink the
consumer writes through (``sink``) and the API's canned queries (``queries``).

Only this package imports clickhouse_connect; driver errors become coordinator errors
in ``errors``. Nothing is opened at import.
"""
