"""``Session``: sends one API request — bearer token, JSON both ways, retries as the
``RetryPolicy`` allows, every failure mapped at this one place (``errors.py``).

Two httpx clients share the settings: one keeps connections alive for ordinary calls;
the other opens a fresh connection for each long poll, so that an ``Interrupter`` learns
that poll's socket and can cut it short (a reused connection announces nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import pydantic_core

from adapters.client.errors import ApiError, from_problem, from_transport, not_sent, retry_after
from adapters.client.interrupt import Watch
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
        self._long_polls = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), **common)

    def close(self) -> None:
        self._http.close()
        self._long_polls.close()

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
    ) -> T:
        """Send, retry what may be retried, and parse the success with ``parse``."""
        content = None if body is None else pydantic_core.to_json(body)
        sent_headers = dict(headers or {})
        if content is not None:
            sent_headers["Content-Type"] = "application/json"
        timeout = httpx.Timeout(self.timeout, read=self.timeout + wait_seconds)
        client = self._long_polls if watch is not None else self._http
        extensions = {"trace": watch.trace} if watch is not None else None

        def attempt() -> httpx.Response:
            try:
                response = client.request(
                    method,
                    path,
                    content=content,
                    params=params,
                    headers=sent_headers,
                    timeout=timeout,
                    extensions=extensions,
                )
            except httpx.TransportError as exc:
                where = f"{method} {self.base_url}{path}"
                raise Transient(from_transport(exc, where), None, sent=not not_sent(exc)) from exc
            except httpx.RequestError as exc:  # redirects, content decoding: not transient
                raise ApiError("bad-response", 0, f"{method} {path}: {exc}") from exc
            if response.is_success:
                return response
            error = from_problem(response.status_code, _body(response))
            if response.status_code in RETRYABLE_STATUSES:
                wait = retry_after(response.headers)
                raise Transient(error, response.status_code, sent=True, retry_after=wait)
            raise error

        response = call_with_retries(self.retry, attempt, safe=safe)
        try:
            return parse(response)
        except ValueError as exc:  # includes pydantic's ValidationError and bad JSON
            raise ApiError(
                "bad-response",
                response.status_code,
                f"{method} {path}: the server's answer does not match this client "
                f"(a different Fleetlog version?): {str(exc)[:500]}",
            ) from exc


def _body(response: httpx.Response) -> Any:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in JSON_TYPES or kind.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
