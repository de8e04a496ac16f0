"""The MCP server: lists the tools and runs a call against the ``Fleet``.

Built on the SDK's low-level ``Server`` rather than ``MCPServer``: the tools' schemas
come from the coordinator's own models (``JobSpec`` for submit) instead of from Python
signatures, and a refusal comes back as a tool error carrying the coordinator's code
and message (``{"code": "forbidden", "message": ...}``), not as a traceback's text.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from importlib import metadata
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)

from adapters.mcp.credentials import Credentials
from adapters.mcp.tools import BY_NAME, TOOLS, FleetTool
from coordinator.fleet import Fleet
from domain.errors import DomainError

log = logging.getLogger("fleetlog.mcp")

SERVER_NAME = "fleetlog"
INSTRUCTIONS = (
    "Fleetlog is a job coordinator. Submit jobs, read them, list them, read their history and "
    "cancel them, in the tenant and with the roles of the token this server was started with."
)
THREADS = 4
"""Fleet calls block (database round trips): they run in worker threads, at most this many
at once, so the event loop keeps reading requests."""


def listed_tools() -> list[Tool]:
    return [
        Tool(
            name=tool.name,
            title=tool.title,
            description=tool.description,
            input_schema=tool.input_schema(),
            output_schema=tool.output_schema(),
            annotations=tool.annotations,
        )
        for tool in TOOLS
    ]


def success(structured: dict[str, Any]) -> CallToolResult:
    # The text block repeats the structured result for clients that read only text.
    text = json.dumps(structured, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def failure(error: dict[str, Any]) -> CallToolResult:
    """A tool error: JSON text with the coordinator's ``code`` and ``message`` (and its
    fields, e.g. ``errors`` for invalid input), for the model to read and act on."""
    text = json.dumps(error, ensure_ascii=False, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class FleetTools:
    """The handlers the low-level server calls, bound to one Fleet and one token."""

    def __init__(self, fleet: Fleet, credentials: Credentials, *, threads: int = THREADS):
        self.fleet = fleet
        self.credentials = credentials
        self.limiter = anyio.CapacityLimiter(threads)
        self.tools = listed_tools()

    async def list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=self.tools)

    async def call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:
            # Not a tool failure but a request for something that does not exist: the
            # protocol answers that with a JSON-RPC error.
            raise MCPError(INVALID_PARAMS, f"unknown tool '{params.name}'; tools: {', '.join(BY_NAME)}")
        try:
            return success(await self._run(tool, params.arguments or {}))
        except DomainError as exc:
            return failure({**exc.to_dict(), "retryable": exc.retryable})
        except Exception as exc:  # the request boundary: a bug fails this call, not the server
            log.exception("tool %s failed unexpectedly", tool.name)
            return failure(
                {
                    "code": "internal-error",
                    "message": f"unexpected {type(exc).__name__}; this is a bug in Fleetlog "
                    "(the server's stderr has the traceback)",
                    "retryable": False,
                }
            )

    async def _run(self, tool: FleetTool, arguments: dict[str, Any]) -> dict[str, Any]:
        identity = self.credentials.identity()
        view = await anyio.to_thread.run_sync(
            partial(tool.run, self.fleet, identity, arguments), limiter=self.limiter
        )
        return view.model_dump(mode="json")


def version() -> str:
    try:
        return metadata.version("fleetlog")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return ""


def build_server(fleet: Fleet, credentials: Credentials) -> Server[Any]:
    handlers = FleetTools(fleet, credentials)
    return Server(
        SERVER_NAME,
        version=version(),
        title="Fleetlog",
        instructions=INSTRUCTIONS,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
    )


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one client over stdin/stdout until it closes stdin."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
