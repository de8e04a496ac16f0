"""``RawLane``: the W3 producer's HTTP client, a load generator rather than a library.

One kept-alive HTTP/1.1 connection, the request head encoded once, the answer read by
its Content-Length (Fleetlog answers JSON with a Content-Length; anything else is an
error here). Like wrk, it spends little CPU per request, so that on 2 shared cores the
producer does not take the CPU the system under test needs: httpx.AsyncClient spent
about 1.1 ms of CPU per POST here, PgQueuer's producer (asyncpg) about 0.2 ms per
enqueue. ``--http-producer httpx`` keeps the httpx lane for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any
from urllib.parse import urlsplit


class HttpAnswerError(RuntimeError):
    pass


class RawLane:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"RawLane speaks plain http://host:port only, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._auth = f"Authorization: Bearer {token}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> RawLane:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        status, body = await self.request("GET", "/healthz")
        if status != 200:
            raise HttpAnswerError(f"GET /healthz: {status} {body[:200]!r}")
        return self

    async def post_json(self, path: str, data: Any) -> tuple[int, bytes]:
        return await self.request("POST", path, json.dumps(data, separators=(",", ":")).encode())

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None, "open() first"
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "transfer-encoding":
                kind = value.strip()
                raise HttpAnswerError(f"{method} {path}: a {kind} answer (only Content-Length is read)")
        if length is None:
            raise HttpAnswerError(f"{method} {path}: no Content-Length in the answer")
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
