"""The MCP adapter: ``fleetlog mcp`` serves the ``Fleet`` to an MCP client over stdio.

``tools.py`` declares the tools, ``server.py`` serves them with the SDK's low-level
server, ``credentials.py`` turns ``$FLEETLOG_TOKEN`` into the caller's ``Identity`` and
``__main__.py`` is the process."""
