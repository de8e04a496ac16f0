"""Small helpers for the contract suite."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

from adapters.http.claims import hand_over
from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.views import ClaimedJob, SubmitResult
from domain.job import JobSpec
from tests.support import make_spec


def submit(fleet: Fleet, who: Identity, **spec: Any) -> UUID:
    return fleet.submit(who, make_spec(**spec)).job.id


def claim(fleet: Fleet, who: Identity, factory: str = "f1", **request: Any) -> list[ClaimedJob]:
    return fleet.claim(who, ClaimRequest(factory_id=factory, **request))


def claim_one(fleet: Fleet, who: Identity, factory: str = "f1", **request: Any) -> ClaimedJob:
    claimed = claim(fleet, who, factory, max_jobs=1, **request)
    assert len(claimed) == 1, f"expected one job, got {len(claimed)}"
    return claimed[0]


def history_types(fleet: Fleet, who: Identity, job_id: UUID) -> list[str]:
    return [h.type for h in fleet.history(who, job_id)]


class LoopHandOvers:
    """Hand-overs as the HTTP API makes them (``adapters.http.claims.hand_over``): from an
    event loop, here running in a thread of its own so that any thread may ask; committed
    from the loop itself where the store can (``Store.loop_commits``), else on a thread."""

    def __init__(self, fleet: Fleet):
        self.commits = fleet.ctx.store.loop_commits()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def __call__(
        self, fleet: Fleet, who: Identity, spec: JobSpec, worker: Identity, request: ClaimRequest
    ) -> tuple[SubmitResult, list[ClaimedJob]]:
        async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            call = functools.partial(fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(None, call)

        handing = hand_over(fleet, who, spec, worker, request, loop_commits=self.commits, run=run)
        return asyncio.run_coroutine_threadsafe(handing, self.loop).result(timeout=60)

    def close(self) -> None:
        if self.commits is not None:
            asyncio.run_coroutine_threadsafe(self.commits.close(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
