"""Room for a refilled claim stream that another server process holds.

``fleetlog serve --processes N`` serves one socket from N processes (and several ``serve``
instances may sit behind one load balancer): a worker's room request (``POST
/v1/claim/room``) leaves on whichever pooled connection is free, and may reach a process
other than the one holding its stream. A stream id begins with its process's tag
(``new_stream_id``), so the process a room request reaches knows whose stream it is: its
own (then the stream is open here or has ended: a 404), or another's, and then, on
PostgreSQL, it forwards the room with ``NOTIFY fleetlog_room``; the process whose tag it
is applies it as if asked itself, after the same check of the worker's identity. Nobody
answers a forward: the room request is accepted (202), not confirmed, and room for a
stream that has ended meanwhile is dropped (its worker learns of the end from the stream
itself). SQLite runs one process: there is nothing to forward to.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from uuid import uuid4

import psycopg

from adapters.http.schemas import MAX_CLAIM_HTTP
from coordinator.errors import Unavailable

log = logging.getLogger("fleetlog.http.room_relay")

ROOM_CHANNEL = "fleetlog_room"
TAG_CHARS = 8
"""Hex characters of a stream id that name its process (the other 24 are random)."""


@dataclass(frozen=True)
class ForwardedRoom:
    stream: str
    subject: str
    tenant: str | None
    jobs: int

    def payload(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, payload: str) -> ForwardedRoom | None:
        """None (logged) for anything but what ``payload`` writes."""
        try:
            data = json.loads(payload)
            room = cls(
                stream=str(data["stream"]),
                subject=str(data["subject"]),
                tenant=None if data["tenant"] is None else str(data["tenant"]),
                jobs=int(data["jobs"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignored a malformed %s notification (%s): %.200r", ROOM_CHANNEL, exc, payload)
            return None
        if not 1 <= room.jobs <= MAX_CLAIM_HTTP:
            log.warning("ignored a %s notification for %d jobs", ROOM_CHANNEL, room.jobs)
            return None
        return room


class RoomRelay:
    def __init__(self, postgres_url: str | None):
        self.tag = uuid4().hex[:TAG_CHARS]
        """This process's part of the ids of the streams it opens."""
        self._url = postgres_url
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    @property
    def relays(self) -> bool:
        """Other processes may hold streams (PostgreSQL)."""
        return self._url is not None

    def new_stream_id(self) -> str:
        return self.tag + uuid4().hex[TAG_CHARS:]

    def ours(self, stream_id: str) -> bool:
        return stream_id.startswith(self.tag)

    def forward(self, room: ForwardedRoom) -> None:
        """Blocks (a worker thread's call): one NOTIFY on this relay's own connection,
        opened on first use and again after a failure. ``Unavailable`` when PostgreSQL
        cannot be reached (the room was not forwarded: the worker's next request for
        the stream, or its next stream, gives it again)."""
        assert self._url is not None, "nothing to forward to on SQLite"
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                self._conn.execute("SELECT pg_notify(%s, %s)", (ROOM_CHANNEL, room.payload()))
            except psycopg.Error as exc:
                self._drop()
                why = f"could not forward room to the server process holding the stream: {exc}"
                raise Unavailable(why) from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
