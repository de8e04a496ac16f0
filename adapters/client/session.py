"""``Session``: sends one API request — bearer token, JSON both ways, retries as the
``RetryPolicy`` allows, every failure mapped at this one place (``errors.py``).

One httpx client keeps connections alive for ordinary calls. Long polls go through
``PollLanes``: each thread that long-polls has a client of its own with one connection
(or a named lane has: a worker's claims, read by whichever of its threads holds the
reading turn), kept alive between its polls (a worker asks again a moment after each answer: a new
connection every time cost both sides a connect and an accept per job), whose socket the
lane remembers so that an ``Interrupter`` can cut a poll on it short. The small
requests a worker sends for every job (``lean=True``) skip httpx for the standard
library's ``http.client`` on connections of their own when the URL allows
(``lean.py``): same request, same answer, same failures, half the CPU.
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
import pydantic_core

from adapters.client.errors import ApiError, from_problem, from_transport, not_sent, retry_after
from adapters.client.interrupt import Watch
from adapters.client.lean import LeanConnections
from adapters.client.retry import RETRYABLE_STATUSES, RetryPolicy, Transient, call_with_retries

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 10.0
KEEPALIVE_SECONDS = 2.0
"""Idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s):
reusing a connection the server is closing at that moment fails a request that
never arrived, which an unsafe request could not retry."""
USER_AGENT = "fleetlog-client"
JSON_TYPES = ("application/json", "application/problem+json")


class Session:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 100,
    ):
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"the server URL must be http(s)://host[:port][/prefix], got {base_url!r}")
        if not token or any(c.isspace() for c in token):
            raise ValueError("the token must be a non-empty string without whitespace")
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": ", ".join(JSON_TYPES),
            "User-Agent": USER_AGENT,
        }
        common: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout),
            "transport": transport,
        }
        self._http = httpx.Client(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            **common,
        )
        self._lean = (
            None
            if transport is not None  # tests script the transport: every request goes through it
            else LeanConnections.for_url(self.base_url, headers, keepalive_seconds=KEEPALIVE_SECONDS)
        )
        self._lanes = PollLanes(
            lambda: httpx.Client(
                limits=httpx.Limits(
                    max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_SECONDS
                ),
                **common,
            )
        )

    def close(self) -> None:
        self._http.close()
        self._lanes.close()
        if self._lean is not None:
            self._lean.close()

    def call(
        self,
        method: str,
        path: str,
        parse: Callable[[httpx.Response], T],
        *,
        safe: bool,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        wait_seconds: float = 0.0,
        watch: Watch | None = None,
        lean: bool = False,
    ) -> T:
        """Send, retry what may be retried, and parse the success with ``parse``.
        ``lean``: a small request sent often (once per job): on ``lean.py``'s
        connections when the URL allows, else through httpx like any other."""
        send = self._sender(
            method,
            path,
            body=body,
            params=params,
            headers=headers,
            wait_seconds=wait_seconds,
            watch=watch,
            stream=False,
            lean=lean,
        )
        response = call_with_retries(self.retry, send, safe=safe)
        try:
            return parse(response)
        except ValueError as exc:  # includes pydantic's ValidationError and bad JSON
            raise _mismatch(method, path, response.status_code, exc) from exc

    def lines(
        self,
        method: str,
        path: str,
        parse: Callable[[str], T],
        *,
        body: Any,
        wait_seconds: float,
        watch: Watch,
        opened: Callable[[httpx.Headers], None] | None = None,
        lane: str | None = None,
    ) -> Iterator[T]:
        """An unsafe request answered by a stream of lines (NDJSON), on this thread's
        long-poll connection: each line parsed with ``parse`` as soon as it arrives.
        A refusal raises as ``call``'s do; a connection lost while reading raises
        ``Unavailable`` (what was read before stays read). ``opened``: given the
        response's headers once it is accepted, before the first line. ``lane``: the
        named long-poll lane to use (default: this thread's)."""
        send = self._sender(
            method,
            path,
            body=body,
            params=None,
            headers=None,
            wait_seconds=wait_seconds,
            watch=watch,
            stream=True,
            lane=lane,
        )
        response = call_with_retries(self.retry, send, safe=False)
        try:
            if opened is not None:
                opened(response.headers)
            for line in response.iter_lines():
                if line:
                    try:
                        yield parse(line)
                    except ValueError as exc:
                        raise _mismatch(method, path, response.status_code, exc) from exc
        except httpx.TransportError as exc:
            raise from_transport(exc, f"{method} {self.base_url}{path}") from exc
        finally:
            response.close()

    def _sender(
        self,
        method: str,
        path: str,
        *,
        body: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        wait_seconds: float,
        watch: Watch | None,
        stream: bool,
        lane: str | None = None,
        lean: bool = False,
    ) -> Callable[[], httpx.Response]:
        """One attempt: the response on success (still open when ``stream``), or the
        failure mapped (``Transient`` when a retry may help)."""
        content = None if body is None else pydantic_core.to_json(body)
        sent_headers = dict(headers or {})
        if content is not None:
            sent_headers["Content-Type"] = "application/json"
        timeout = httpx.Timeout(self.timeout, read=self.timeout + wait_seconds)
        client = self._http
        extensions = None
        if watch is not None:
            poll_lane = self._lanes.lane(lane)
            client, extensions = poll_lane.client, {"trace": poll_lane.tracer(watch)}
        lean_to = self._lean if lean and watch is None and not stream and not params else None

        def attempt() -> httpx.Response:
            try:
                if lean_to is not None:
                    response = lean_to.send(
                        method, path, content=content, headers=sent_headers, timeout=timeout
                    )
                else:
                    request = client.build_request(
                        method,
                        path,
                        content=content,
                        params=params,
                        headers=sent_headers,
                        timeout=timeout,
                        extensions=extensions,
                    )
                    response = client.send(request, stream=stream)
                    if stream and not response.is_success:
                        response.read()  # the problem document
            except httpx.TransportError as exc:
                where = f"{method} {self.base_url}{path}"
                raise Transient(from_transport(exc, where), None, sent=not not_sent(exc)) from exc
            except httpx.RequestError as exc:  # redirects, content decoding: not transient
                raise ApiError("bad-response", 0, f"{method} {path}: {exc}") from exc
            return _answered(response)

        return attempt


def _answered(response: httpx.Response) -> httpx.Response:
    """A success as it is; a refusal raised as its exception (``Transient`` when the
    server asks to be asked again)."""
    if response.is_success:
        return response
    error = from_problem(response.status_code, _body(response))
    if response.status_code in RETRYABLE_STATUSES:
        wait = retry_after(response.headers)
        raise Transient(error, response.status_code, sent=True, retry_after=wait)
    raise error


def _mismatch(method: str, path: str, status: int, exc: ValueError) -> ApiError:
    return ApiError(
        "bad-response",
        status,
        f"{method} {path}: the server's answer does not match this client "
        f"(a different Fleetlog version?): {str(exc)[:500]}",
    )


def _body(response: httpx.Response) -> Any:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in JSON_TYPES or kind.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


class PollLane:
    """One thread's long-poll connection: a client with a single connection, and the
    socket it last connected (``Watch.attach`` needs it when the poll reuses it)."""

    def __init__(self, client: httpx.Client):
        self.client = client
        self.socket: socket.socket | None = None

    def tracer(self, watch: Watch) -> Callable[[str, dict[str, Any]], None]:
        """The request's ``trace`` hook; the poll is attached to the remembered socket
        now, and to a new one if the client connects again (the old one expired)."""
        if self.socket is not None:
            watch.attach(self.socket)

        def trace(event: str, info: dict[str, Any]) -> None:
            sock = watch.trace(event, info)
            if sock is not None:
                self.socket = sock

        return trace


class PollLanes:
    """A ``PollLane`` per thread that long-polls, and per name asked for (a worker's
    claims: its threads take turns reading them, one at a time). A lane of a thread that
    has ended is closed when the next thread's lane is made."""

    def __init__(self, make: Callable[[], httpx.Client]):
        self._make = make
        self._lock = threading.Lock()
        self._lanes: dict[int, tuple[weakref.ref[threading.Thread], PollLane]] = {}
        self._named: dict[str, PollLane] = {}

    def lane(self, name: str | None = None) -> PollLane:
        """The lane ``name`` (its users never poll on it at once), else this thread's."""
        if name is not None:
            with self._lock:
                named = self._named.get(name)
                if named is None:
                    named = self._named[name] = PollLane(self._make())
                return named
        me = threading.current_thread()
        with self._lock:
            found = self._lanes.get(me.ident or 0)
            if found is not None and found[0]() is me:
                return found[1]
            ended = [key for key, (ref, _) in self._lanes.items() if not _alive(ref)]
            dropped = [self._lanes.pop(key)[1] for key in ended]
            lane = PollLane(self._make())
            self._lanes[me.ident or 0] = (weakref.ref(me), lane)
        for old in dropped:
            old.client.close()
        return lane

    def close(self) -> None:
        with self._lock:
            lanes = [lane for _, lane in self._lanes.values()] + list(self._named.values())
            self._lanes, self._named = {}, {}
        for lane in lanes:
            lane.client.close()


def _alive(ref: weakref.ref[threading.Thread]) -> bool:
    thread = ref()
    return thread is not None and thread.is_alive()
