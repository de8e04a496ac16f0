"""The HTTP API: Starlette routes over the one ``Fleet`` service (see ``app.py``)."""
