"""``LeanConnections``: small requests on kept-alive HTTP/1.1 connections of the
standard library's ``http.client``, without httpx's client and connection pool.

A worker sends two small requests for every job it runs: room for its claim stream
(``POST /v1/claim/room``) and, batched, the completions. Through httpx a room request
cost the worker about 0.5 ms of CPU under its GIL (client, connection pool, httpcore,
h11), here about 0.23 ms, and the time a job waits to start went down with it
(bench/results/issue3-lean-requests-ab-2026-12-07-s8). What is kept of httpx's contract:

- the answer is an ``httpx.Response`` and a failure an ``httpx.TransportError`` of the
  kind httpx raises: ``ConnectError``/``ConnectTimeout`` when the connection could not
  be opened (the request never left: safe to send again), ``ReadTimeout``,
  ``RemoteProtocolError``... once it may have reached the server. ``Session`` maps
  and retries both paths with the same code;
- a kept-alive connection that has been idle longer than ``keepalive_seconds``, or
  that is readable while idle (the server closed it, or sent something nobody asked
  for), is closed instead of reused, as httpcore does: a request is only written to a
  connection believed open, so an unsafe request is not lost to a server closing an
  idle connection (nor sent twice to make up for it);
- it serves only plain ``http://`` URLs that no proxy in the environment applies to:
  ``for_url`` answers None otherwise, and the caller keeps using httpx, whose TLS,
  certificate and proxy settings stay the only ones.
"""

from __future__ import annotations

import http.client
import select
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping

import httpx

MAX_IDLE = 8
"""Idle connections kept for reuse; one per thread sending at once is all it needs."""


class _Line:
    """One connection and when it was last given back."""

    def __init__(self, connection: http.client.HTTPConnection, idle_since: float):
        self.connection = connection
        self.idle_since = idle_since


class LeanConnections:
    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        headers: Mapping[str, str],
        *,
        keepalive_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``prefix``: the base URL's path, put before every request's path;
        ``headers``: sent with every request (the caller's own come after)."""
        self.host, self.port, self.prefix = host, port, prefix.rstrip("/")
        self.headers = dict(headers)
        self.keepalive_seconds = keepalive_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[_Line] = []
        self._closed = False

    @classmethod
    def for_url(
        cls, base_url: str, headers: Mapping[str, str], *, keepalive_seconds: float
    ) -> LeanConnections | None:
        """Connections for ``base_url``, or None when httpx must carry its requests
        (https, or a proxy from the environment applies)."""
        url = httpx.URL(base_url)
        if url.scheme != "http" or not url.host or _proxied(url.host):
            return None
        prefix = url.raw_path.decode("ascii").split("?", 1)[0]
        return cls(url.host, url.port or 80, prefix, headers, keepalive_seconds=keepalive_seconds)

    def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
    ) -> httpx.Response:
        """The server's whole answer; ``httpx.TransportError`` when there is none."""
        line = self._take()
        connection = line.connection
        if connection.sock is None:
            _connect(connection, timeout)
        try:
            connection.sock.settimeout(timeout.write)
            connection.request(method, self.prefix + path, body=content, headers={**self.headers, **headers})
            connection.sock.settimeout(timeout.read)
            answer = connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _after_connect(exc) from exc
        except BaseException:
            connection.close()
            raise
        response = httpx.Response(answer.status, headers=answer.getheaders(), content=body)
        if answer.will_close:
            connection.close()
        else:
            self._give_back(line)
        return response

    def close(self) -> None:
        with self._lock:
            lines, self._idle, self._closed = self._idle, [], True
        for line in lines:
            line.connection.close()

    def _take(self) -> _Line:
        """An idle connection still fit for a request, or a new (unconnected) one."""
        stale: list[_Line] = []
        found: _Line | None = None
        now = self._clock()
        with self._lock:
            while self._idle:
                line = self._idle.pop()
                if now - line.idle_since < self.keepalive_seconds and not _readable(line.connection):
                    found = line
                    break
                stale.append(line)
        for line in stale:
            line.connection.close()
        if found is not None:
            return found
        return _Line(http.client.HTTPConnection(self.host, self.port), now)

    def _give_back(self, line: _Line) -> None:
        line.idle_since = self._clock()
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(line)
                return
        line.connection.close()


def _connect(connection: http.client.HTTPConnection, timeout: httpx.Timeout) -> None:
    connection.timeout = timeout.connect
    try:
        connection.connect()
    except TimeoutError as exc:
        connection.close()
        raise httpx.ConnectTimeout(f"connecting to {connection.host}:{connection.port} timed out") from exc
    except OSError as exc:
        connection.close()
        raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc


def _after_connect(exc: OSError | http.client.HTTPException) -> httpx.TransportError:
    """A failure once the request may have reached the server, as httpx names it."""
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("no answer in time")
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        # RemoteDisconnected is both; a reset or a broken pipe means the same here.
        return httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return httpx.ReadError(f"{type(exc).__name__}: {exc}")


def _readable(connection: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the server (or
    is out of step with it): either way it takes no request. Unconnected: not."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed under us
        return True


def _proxied(host: str) -> bool:
    """Whether httpx would send a request for ``host`` through a proxy named in the
    environment (``HTTP_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``)."""
    proxies = urllib.request.getproxies()
    if not ("http" in proxies or "all" in proxies):
        return False
    return not urllib.request.proxy_bypass(host)
