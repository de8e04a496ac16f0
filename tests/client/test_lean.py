"""The lean path of the client (``adapters/client/lean.py``): the small requests a
worker sends once per job go out on ``http.client`` connections of their own, and
keep the client's contract — the base URL's path prefix, the headers, kept-alive
connections checked before reuse, a request never sent twice once it may have reached
the server, timeouts, problem documents mapped to the same exceptions — and httpx
carries them whenever the URL is https or a proxy applies.

Most tests talk to a scripted HTTP/1.1 server (each request gets the next scripted
answer, or lets the connection drop) because the protocol's corner cases are what
they are about; the last ones use the real server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import httpx
import pytest

from adapters.bootstrap import Settings
from adapters.client import FleetClient
from adapters.client.lean import LeanConnections
from adapters.client.retry import RetryPolicy
from adapters.client.session import Session
from coordinator.errors import NotFound, Unavailable
from coordinator.reporting import Completion
from tests.client.conftest import WORKER_ROLES, ClientFactory

ROOM_ANSWER = {"stream": "s-1", "room": 3, "forwarded": False}
TIMEOUT = httpx.Timeout(5.0)

Action = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    client_port: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """What the server answers, request by request (``answer`` once they run out)."""

    actions: list[Action] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> Action:
        with self.lock:
            return self.actions.pop(0) if self.actions else answer(200, ROOM_ANSWER)


def answer(status: int, body: Any, *, headers: dict[str, str] | None = None, close: bool = False) -> Action:
    """A JSON answer; ``close``: the server closes the connection after it without
    saying so (as one closing an idle connection a moment later does)."""

    def act(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        kind = "application/problem+json" if status >= 400 else "application/json"
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if close:
            handler.close_connection = True

    return act


def chunked(body: Any) -> Action:
    def act(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        half = len(data) // 2
        for part in (data[:half], data[half:]):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    return act


def drop(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then close the connection without an answer."""
    handler.close_connection = True


def stall(seconds: float) -> Action:
    def act(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        handler.close_connection = True

    return act


def connection_close(handler: BaseHTTPRequestHandler) -> None:
    answer(200, ROOM_ANSWER, headers={"Connection": "close"}, close=True)(handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.script.lock:
            self.script.seen.append(
                Seen(self.client_address[1], self.command, self.path, dict(self.headers.items()), body)
            )
        self.script.next_action()(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Scripted:
    script: Script
    url: str
    port: int


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Script()
    handler = type("ScriptedHandler", (Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield Scripted(script, f"http://127.0.0.1:{port}", port)
    server.shutdown()
    server.server_close()


def lean_for(url: str) -> LeanConnections:
    lean = LeanConnections.for_url(url, {"Authorization": "Bearer t0ken"}, keepalive_seconds=2.0)
    assert lean is not None
    return lean


def room(session: Session) -> dict[str, Any]:
    """A room request as ``FleetClient.add_room`` sends it."""
    return session.call(
        "POST",
        "/v1/claim/room",
        lambda response: dict(response.json()),
        safe=False,
        body={"stream": "s-1", "jobs": 3},
        lean=True,
    )


@pytest.fixture
def session(scripted: Scripted) -> Iterator[Session]:
    made = Session(scripted.url, "t0ken", timeout=1.0, retry=RetryPolicy(initial_backoff_seconds=0.01))
    yield made
    made.close()


def wait_closed_by_server(session: Session) -> None:
    """Until the server's close of the idle connection has reached this side."""
    lean = session._lean
    assert lean is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        idle = lean._idle
        if idle and idle[0].connection.sock is not None:
            sock = idle[0].connection.sock
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    sock.setblocking(True)
                    return
            except BlockingIOError:
                pass
            sock.setblocking(True)
        time.sleep(0.01)
    raise AssertionError("the server's close never arrived")


# ------------------------------------------------------------------ which path


def test_plain_http_goes_lean_and_https_stays_with_httpx() -> None:
    assert lean_for("http://127.0.0.1:8000").port == 8000
    assert LeanConnections.for_url("https://fleet.example", {}, keepalive_seconds=2) is None


def test_a_proxy_in_the_environment_keeps_requests_with_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert LeanConnections.for_url("http://fleet.example:8000", {}, keepalive_seconds=2) is None
    # ... except for the hosts NO_PROXY exempts
    monkeypatch.setenv("NO_PROXY", "fleet.example")
    assert LeanConnections.for_url("http://fleet.example:8000", {}, keepalive_seconds=2) is not None


def test_a_scripted_transport_carries_every_request(scripted: Scripted) -> None:
    sent: list[str] = []

    def script(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json=ROOM_ANSWER)

    session = Session(scripted.url, "t0ken", transport=httpx.MockTransport(script))
    try:
        assert room(session) == ROOM_ANSWER
    finally:
        session.close()
    assert sent == ["/v1/claim/room"]
    assert scripted.script.seen == []


# ------------------------------------------------------------- the request


def test_the_request_carries_the_path_prefix_headers_and_body(scripted: Scripted) -> None:
    with_prefix = Session(scripted.url + "/fleet/", "t0ken")
    try:
        assert room(with_prefix) == ROOM_ANSWER
    finally:
        with_prefix.close()
    [seen] = scripted.script.seen
    assert (seen.method, seen.path) == ("POST", "/fleet/v1/claim/room")
    assert seen.headers["Authorization"] == "Bearer t0ken"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "fleetlog-client"
    assert seen.headers["Host"] == f"127.0.0.1:{scripted.port}"
    assert json.loads(seen.body) == {"stream": "s-1", "jobs": 3}


def test_one_connection_serves_request_after_request(scripted: Scripted, session: Session) -> None:
    for _ in range(5):
        assert room(session) == ROOM_ANSWER
    assert len({seen.client_port for seen in scripted.script.seen}) == 1


def test_a_chunked_answer_is_read_whole(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(chunked(ROOM_ANSWER))
    assert room(session) == ROOM_ANSWER
    assert room(session) == ROOM_ANSWER  # and the connection stays usable after it
    assert len({seen.client_port for seen in scripted.script.seen}) == 1


def test_an_answer_saying_connection_close_is_not_reused(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(connection_close)
    room(session)
    room(session)
    first, second = scripted.script.seen
    assert first.client_port != second.client_port


# ------------------------------------------------ connections closed or stale


def test_a_connection_the_server_closed_while_idle_is_not_written_to(
    scripted: Scripted, session: Session
) -> None:
    # Given an answer after which the server closed the connection, without a word
    scripted.script.actions.append(answer(200, ROOM_ANSWER, close=True))
    room(session)
    wait_closed_by_server(session)
    # When the next room request goes out
    assert room(session) == ROOM_ANSWER
    # Then it went on a new connection, once: nothing was lost, nothing sent twice
    first, second = scripted.script.seen
    assert first.client_port != second.client_port
    assert len(scripted.script.seen) == 2


def test_a_connection_idle_past_keepalive_is_replaced(scripted: Scripted) -> None:
    now = [100.0]
    lean = LeanConnections("127.0.0.1", scripted.port, "", {}, keepalive_seconds=2.0, clock=lambda: now[0])
    try:
        for step in (0.0, 1.0, 2.5):  # reused after 1 s idle, replaced after 2.5 s
            now[0] += step
            lean.send("POST", "/v1/claim/room", content=b"{}", headers={}, timeout=TIMEOUT)
    finally:
        lean.close()
    ports = [seen.client_port for seen in scripted.script.seen]
    assert ports[0] == ports[1] != ports[2]


# ----------------------------------------------------------------- failures


def test_a_request_dropped_after_sending_is_not_sent_again(scripted: Scripted, session: Session) -> None:
    # The server read the room request and closed without answering: it may have given
    # the room, so the request is not repeated (the room would be given twice).
    scripted.script.actions.append(drop)
    with pytest.raises(Unavailable, match="did not answer"):
        room(session)
    assert len(scripted.script.seen) == 1
    assert room(session) == ROOM_ANSWER  # and the next request gets a new connection


def test_a_safe_request_dropped_after_sending_is_retried(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(drop)
    answer_ = session.call("POST", "/v1/x", lambda r: dict(r.json()), safe=True, body={}, lean=True)
    assert answer_ == ROOM_ANSWER
    assert len(scripted.script.seen) == 2


def test_no_answer_in_time_is_unavailable_and_not_repeated(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(stall(2.0))  # the session's timeout: 1 s
    started = time.monotonic()
    with pytest.raises(Unavailable, match="no answer in time"):
        room(session)
    assert time.monotonic() - started < 1.9
    assert len(scripted.script.seen) == 1


def test_a_refused_connection_never_left_so_it_is_tried_again() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lean = lean_for(f"http://127.0.0.1:{port}")
    with pytest.raises(httpx.ConnectError):
        lean.send("POST", "/v1/claim/room", content=b"{}", headers={}, timeout=TIMEOUT)
    attempts: list[float] = []
    session = Session(
        f"http://127.0.0.1:{port}",
        "t0ken",
        retry=RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01),
    )
    original = session._lean.send if session._lean else None
    assert original is not None

    def counted(*args: Any, **kwargs: Any) -> httpx.Response:
        attempts.append(time.monotonic())
        return original(*args, **kwargs)

    session._lean.send = counted  # type: ignore[method-assign,union-attr]
    try:
        with pytest.raises(Unavailable, match="ConnectionRefusedError"):
            room(session)
    finally:
        session.close()
    assert len(attempts) == 3  # an unsafe request, retried: it surely never arrived


def test_a_problem_document_becomes_the_servers_exception(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(
        answer(
            404, {"code": "not-found", "detail": "no claim stream s-1", "kind": "claim stream", "id": "s-1"}
        )
    )
    with pytest.raises(NotFound, match="no claim stream s-1"):
        room(session)


def test_a_503_conflict_is_retried_as_the_server_rolled_back(scripted: Scripted, session: Session) -> None:
    scripted.script.actions.append(
        answer(
            503, {"code": "conflict", "detail": "concurrent update, retry: x"}, headers={"Retry-After": "0"}
        )
    )
    assert room(session) == ROOM_ANSWER
    assert len(scripted.script.seen) == 2


# ------------------------------------------------------------- the real server


def test_a_live_client_gives_room_and_completes_on_lean_connections(
    make_client: ClientFactory, backend: Settings
) -> None:
    client = make_client("acme", *WORKER_ROLES)
    lean = client._session._lean
    assert lean is not None
    # A stream this process does not hold: on PostgreSQL the room is forwarded to the
    # process that may (room_relay.py); on SQLite there is none, and the 404 is NotFound
    if backend.database_url:
        assert client.add_room("0" * 32, 1).forwarded
    else:
        with pytest.raises(NotFound):
            client.add_room("0" * 32, 1)
    # A completion of a job never claimed: refused item by item, on the same connection
    missing = UUID("00000000-0000-4000-8000-000000000001")
    [result] = client.complete([Completion(job_id=missing, epoch=1, outcome="succeeded")])
    assert not result.ok and result.error is not None
    assert len(lean._idle) == 1


def test_a_fleet_client_on_a_mock_transport_never_goes_lean() -> None:
    client = FleetClient(
        "http://fleet.test", "t0ken", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    try:
        assert client._session._lean is None
    finally:
        client.close()
