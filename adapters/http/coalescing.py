"""``CoalescingProtocol``: uvicorn's httptools protocol, with the writes a response makes
in one turn of the event loop sent as one.

uvicorn writes a response's head when it starts and its body when it comes: two sends,
two packets, and on loopback each send runs the receiving side's TCP work too, then
wakes the client, which reads the head and sleeps again until the body arrives. A
profile of ``fleetlog serve`` under load put 17% of its HTTP-handling CPU in the head's
send alone. Held until the end of the loop's turn (``call_soon``), head and body leave
together; a streamed response's later chunks go out as they come, one send each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: ``write`` collects, and the collected bytes are sent once the
    loop's current turn ends (or at once before ``close``/``write_eof``)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """Pass as ``uvicorn.Config(http=...)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
