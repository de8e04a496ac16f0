"""``CoalescingTransport``: the writes of one turn of the event loop leave as one send;
nothing is held past the turn, nor past a close."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.http.coalescing import CoalescingTransport


class Recording:
    """The transport underneath: what was sent, and in how many writes."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sends.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_a_head_and_body_written_in_one_turn_leave_together() -> None:
    async def scenario() -> Recording:
        under = Recording()
        t = CoalescingTransport(under, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"{}")
        assert under.sends == []  # held for the rest of this turn
        await asyncio.sleep(0)
        t.write(b"later chunk")  # a streamed chunk, in a later turn: its own send
        await asyncio.sleep(0)
        return under

    assert asyncio.run(scenario()).sends == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"later chunk"]


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[Recording, Recording]:
        loop = asyncio.get_running_loop()
        closing, aborting = Recording(), Recording()
        a = CoalescingTransport(closing, loop)  # type: ignore[arg-type]
        a.write(b"last words")
        a.close()
        b = CoalescingTransport(aborting, loop)  # type: ignore[arg-type]
        b.write(b"never")
        b.abort()
        await asyncio.sleep(0)
        # Anything else is the transport's own
        assert a.get_extra_info("peername") == ("127.0.0.1", 1)
        return closing, aborting

    closing, aborting = asyncio.run(scenario())
    assert closing.sends == [b"last words"] and closing.closed
    assert aborting.sends == [] and aborting.aborted
