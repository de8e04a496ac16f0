"""The routes: each ``Endpoint`` says who may call it, what it accepts and answers,
and hands the validated call to the ``Fleet`` (synchronous, so it runs on one of
``threads`` worker threads; the event loop only parses, waits and writes).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from adapters.http.claims import DEFAULT_HANDOFF_WAIT, REFILL_IDLE_SECONDS, Claims
from adapters.http.quota_refresh import QuotaRefresher
from adapters.http.room_relay import RoomRelay
from adapters.http.routing import JSON, NDJSON, Call, Endpoint, LinesOf, ListOf
from adapters.http.schemas import (
    STREAM_HEADER,
    BatchResult,
    BatchSubmit,
    CancelBody,
    ClaimBody,
    ClaimResponse,
    CompletionBatch,
    Health,
    ListQuery,
    PatchJob,
    Problem,
    PublishedBatch,
    Readiness,
    ReleaseBody,
    RenewBody,
    RoomBody,
    RoomResult,
    StateQuery,
    SubmitResponse,
)
from adapters.http.waiting import WorkBroadcaster
from adapters.submit_schema import SubmitArguments
from coordinator.errors import InvalidRequest, Unavailable
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from coordinator.quotas import QuotaView, TenantQuotas
from coordinator.views import (
    ClaimedJob,
    FactoryView,
    HistoryEntry,
    JobPage,
    JobView,
    RenewResult,
    RunView,
)
from domain.errors import DomainError
from domain.factory import FactoryReport
from domain.job import JobSpec

T = TypeVar("T")
log = logging.getLogger("fleetlog.http")

FACTORIES = ListOf(FactoryView)
RUNS = ListOf(RunView)
EVENTS = ListOf(HistoryEntry)


def json_response(value: BaseModel | list[Any], status: int = 200, adapter: ListOf | None = None) -> Response:
    if isinstance(value, BaseModel):
        body = value.model_dump_json().encode()
    else:
        assert adapter is not None
        body = adapter.dump(value)
    return Response(body, status_code=status, media_type=JSON)


def ndjson(jobs: Sequence[ClaimedJob]) -> bytes:
    return b"".join(job.model_dump_json().encode() + b"\n" for job in jobs)


def _reading(identity: Identity) -> Identity:
    """The writer may read back the job it just wrote (a worker-only token answers a
    fenced write with the job's new state, in its own tenant only)."""
    return Identity(identity.subject, identity.tenant, identity.roles | {Role.READER})


class Api:
    def __init__(
        self,
        fleet: Fleet,
        broadcaster: WorkBroadcaster,
        *,
        threads: int,
        handoff: bool = True,
        handoff_wait: float = DEFAULT_HANDOFF_WAIT,
        refill_idle: float = REFILL_IDLE_SECONDS,
        relay: RoomRelay | None = None,
        loop_commits: bool = True,
    ):
        self.fleet = fleet
        self.broadcaster = broadcaster
        # A plain pool: anyio's to_thread (a capacity limiter, cancel scopes, a checkpoint
        # per call) cost more CPU per request than the hop itself. Calls beyond
        # ``threads`` wait in the pool's queue, as they waited for the limiter.
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fleetlog-api")
        self.claims = Claims(
            fleet,
            broadcaster,
            self.run,
            handoff=handoff,
            handoff_wait=handoff_wait,
            refill_idle=refill_idle,
            relay=relay,
            loop_commits=fleet.ctx.store.loop_commits() if loop_commits else None,
        )
        self.quota_refresher = QuotaRefresher(fleet.quotas.cache, self.run)
        """No request waits for the quota cache's reload (``quota_refresh.py``)."""

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on a worker thread, in a copy of the caller's context. A cancelled
        caller does not stop it: the call ends on its own and its result is dropped."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    async def start(self) -> None:
        if self.claims.loop_commits is not None:
            try:
                await self.claims.loop_commits.open()
            except Unavailable as exc:  # hand-overs go through threads until it can
                log.warning("could not open the event loop's connections yet: %s", exc.message)
        self.quota_refresher.start()

    async def close(self) -> None:
        await self.quota_refresher.close()
        self._threads.shutdown(wait=False)
        self.claims.relay.close()
        if self.claims.loop_commits is not None:
            await self.claims.loop_commits.close()

    # ------------------------------------------------------------ health

    async def healthz(self, call: Call) -> Response:
        return json_response(Health(status="ok"))

    async def readyz(self, call: Call) -> Response:
        await self.run(self.fleet.ctx.store.ping)
        return json_response(Readiness(status="ready", store=self.fleet.ctx.store.backend))

    # -------------------------------------------------------- submitters

    async def submit(self, call: Call) -> Response:
        result = await self.claims.submit(call.identity, call.body)
        return json_response(result, 201 if result.outcome == "created" else 200)

    async def submit_batch(self, call: Call) -> Response:
        batch: BatchSubmit = call.body
        results = await self.run(self.fleet.submit_many, call.identity, batch.jobs)
        self.broadcaster.local({spec.queue for spec in batch.jobs})
        return json_response(BatchResult(results=results))

    async def cancel(self, call: Call) -> Response:
        body: CancelBody = call.body
        view = await self.run(self.fleet.cancel, call.identity, call.path["job_id"], body.reason)
        return json_response(view)

    async def requeue(self, call: Call) -> Response:
        view = await self.run(self.fleet.requeue, call.identity, call.path["job_id"])
        self.broadcaster.local([view.queue])
        return json_response(view)

    # ----------------------------------------------------------- readers

    async def list_jobs(self, call: Call) -> Response:
        q: ListQuery = call.query
        page = await self.run(
            self.fleet.list_jobs,
            call.identity,
            states=tuple(q.state) if q.state else None,
            queue=q.queue,
            idempotency_key=q.idempotency_key,
            parent_id=q.parent_id,
            limit=q.limit,
            cursor=q.cursor,
        )
        return json_response(page)

    async def get_job(self, call: Call) -> Response:
        return json_response(await self.run(self.fleet.get, call.identity, call.path["job_id"]))

    async def runs(self, call: Call) -> Response:
        runs = await self.run(self.fleet.runs, call.identity, call.path["job_id"])
        return json_response(runs, adapter=RUNS)

    async def events(self, call: Call) -> Response:
        events = await self.run(self.fleet.history, call.identity, call.path["job_id"])
        return json_response(events, adapter=EVENTS)

    async def state_at(self, call: Call) -> Response:
        q: StateQuery = call.query
        return json_response(
            await self.run(self.fleet.state_at, call.identity, call.path["job_id"], q.version)
        )

    async def factories(self, call: Call) -> Response:
        return json_response(await self.run(self.fleet.list_factories, call.identity), adapter=FACTORIES)

    # ----------------------------------------------------------- workers

    async def claim(self, call: Call) -> Response:
        body: ClaimBody = call.body
        if body.refill:
            raise InvalidRequest(
                "claim",
                [
                    {
                        "loc": "body.refill",
                        "msg": "refill is for claim streams (POST /v1/claim/stream): "
                        "a long poll answers once",
                        "type": "value_error",
                    }
                ],
            )
        batches = self.claims.batches(
            call.identity, body, stream=False, disconnected=call.request.is_disconnected
        )
        jobs = [job async for batch in batches for job in batch]
        return json_response(ClaimResponse(jobs=jobs))

    async def claim_stream(self, call: Call) -> Response:
        """The first batch is awaited here, so that a refusal of the first claim is still
        an ordinary problem response; the rest is written as it comes. A failure after
        that ends the stream (logged): the worker's next request meets it again, first."""
        body: ClaimBody = call.body
        stream_id = self.claims.new_stream_id() if body.refill else None
        batches = self.claims.batches(
            call.identity, body, stream=True, disconnected=call.request.is_disconnected, stream_id=stream_id
        )
        try:
            first: list[ClaimedJob] = await anext(batches, [])
        except BaseException:
            await batches.aclose()
            raise

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield ndjson(first)
                async for batch in batches:
                    yield ndjson(batch)
            except DomainError as exc:
                log.warning("claim stream for %s ended early: %s", body.factory_id, exc.message)
            finally:
                await batches.aclose()

        headers = None if stream_id is None else {STREAM_HEADER: stream_id}
        return StreamingResponse(lines(), media_type=NDJSON, headers=headers)

    async def add_room(self, call: Call) -> Response:
        body: RoomBody = call.body
        room = await self.claims.add_room(call.identity, body.stream, body.jobs)
        if room is None:
            return json_response(RoomResult(stream=body.stream, room=None, forwarded=True), 202)
        return json_response(RoomResult(stream=body.stream, room=room))

    async def patch_job(self, call: Call) -> Response:
        body: PatchJob = call.body
        job_id = call.path["job_id"]
        view = await self.run(self._patch, call, job_id, body)
        return json_response(view)

    def _patch(self, call: Call, job_id: Any, body: PatchJob) -> JobView:
        fleet, who, epoch = self.fleet, call.identity, body.epoch
        if body.state == "running":
            fleet.start(who, job_id, epoch)
        if body.phase is not None:
            fleet.report_phase(who, job_id, epoch, body.phase)
        if body.has_checkpoint:
            fleet.checkpoint(who, job_id, epoch, body.checkpoint)
        if body.state == "succeeded":
            fleet.succeed(who, job_id, epoch, body.result, body.insights)
        elif body.state == "failed":
            assert body.error is not None
            fleet.fail(who, job_id, epoch, body.error, body.insights)
            self.broadcaster.wake_all()  # a retry may be due at once
        elif body.insights is not None:
            fleet.report_insights(who, job_id, epoch, body.insights)
        return fleet.get(_reading(who), job_id)

    async def complete(self, call: Call) -> Response:
        batch: CompletionBatch = call.body
        results = await self.run(self.fleet.complete, call.identity, batch.completions)
        if any(c.outcome == "failed" for c in batch.completions):
            self.broadcaster.wake_all()
        return json_response(BatchResult(results=results))

    async def renew(self, call: Call) -> Response:
        body: RenewBody = call.body
        result = await self.run(
            self.fleet.renew, call.identity, call.path["job_id"], body.epoch, body.lease_seconds
        )
        return json_response(result)

    async def release(self, call: Call) -> Response:
        body: ReleaseBody = call.body

        def release() -> JobView:
            self.fleet.release(call.identity, call.path["job_id"], body.epoch, body.reason)
            return self.fleet.get(_reading(call.identity), call.path["job_id"])

        view = await self.run(release)
        self.broadcaster.local([view.queue])
        return json_response(view)

    async def heartbeat(self, call: Call) -> Response:
        return json_response(await self.run(self.fleet.heartbeat, call.identity, call.body))

    # ----------------------------------------------------------- admins

    async def put_quotas(self, call: Call) -> Response:
        view = await self.run(self.fleet.set_quotas, call.identity, call.path["tenant"], call.body)
        return json_response(view)

    async def get_quotas(self, call: Call) -> Response:
        return json_response(await self.run(self.fleet.get_quotas, call.identity, call.path["tenant"]))

    # ------------------------------------------------------------ routes

    def endpoints(self) -> list[Endpoint]:
        job = "/v1/jobs/{job_id}"
        common = {401: Problem, 403: Problem}
        with_job = {**common, 404: Problem, 422: Problem}
        return [
            Endpoint(
                "GET", "/healthz", "healthz", "Liveness.", self.healthz, None, {200: Health}, tag="health"
            ),
            Endpoint(
                "GET",
                "/readyz",
                "readyz",
                "Readiness: the store answers.",
                self.readyz,
                None,
                {200: Readiness, 503: Problem},
                tag="health",
            ),
            Endpoint(
                "POST",
                "/v1/jobs",
                "submit_job",
                "Submit a job.",
                self.submit,
                Role.SUBMITTER,
                {
                    201: SubmitResponse,
                    200: SubmitResponse,
                    **common,
                    404: Problem,
                    409: Problem,
                    422: Problem,
                    429: Problem,
                },
                body=JobSpec,
                published=SubmitArguments,
                headers={"Idempotency-Key": "the idempotency key (or send it in the body)"},
                description="201: created. 200: an identical resubmit (same id, outcome 'existing') or "
                "the queued job with this key was superseded by new content (outcome 'superseded'). "
                "409: the key's job can no longer be superseded. 422: invalid, an unknown dependency, "
                "or a dependency cycle (listed). 404: parent_id names no job of the tenant. "
                "429: a quota refuses it (see Retry-After).",
            ),
            Endpoint(
                "POST",
                "/v1/jobs/batch",
                "submit_jobs",
                "Submit up to 1,000 jobs in one transaction.",
                self.submit_batch,
                Role.SUBMITTER,
                {200: BatchResult, **common, 422: Problem, 429: Problem},
                body=BatchSubmit,
                published=PublishedBatch,
            ),
            Endpoint(
                "GET",
                "/v1/jobs",
                "list_jobs",
                "List jobs (keyset pagination: pass next_cursor back as cursor).",
                self.list_jobs,
                Role.READER,
                {200: JobPage, **common, 422: Problem},
                query=ListQuery,
            ),
            Endpoint(
                "GET",
                job,
                "get_job",
                "A job's current state.",
                self.get_job,
                Role.READER,
                {200: JobView, **with_job},
            ),
            Endpoint(
                "PATCH",
                job,
                "patch_job",
                "A fenced write by the lease holder.",
                self.patch_job,
                Role.WORKER,
                {200: JobView, **with_job, 409: Problem},
                body=PatchJob,
                description="409 with code 'stale-epoch' (and current_epoch) when the epoch no longer "
                "holds the job; 409 'illegal-transition' when the job's state forbids the write.",
                tag="workers",
            ),
            Endpoint(
                "GET",
                job + "/runs",
                "job_runs",
                "A job's attempts.",
                self.runs,
                Role.READER,
                {200: RUNS, **with_job},
            ),
            Endpoint(
                "GET",
                job + "/events",
                "job_events",
                "A job's history, in order.",
                self.events,
                Role.READER,
                {200: EVENTS, **with_job},
            ),
            Endpoint(
                "GET",
                job + "/state",
                "job_state_at",
                "A job as it was at a version.",
                self.state_at,
                Role.READER,
                {200: JobView, **with_job},
                query=StateQuery,
            ),
            Endpoint(
                "POST",
                job + "/cancel",
                "cancel_job",
                "Cancel a job.",
                self.cancel,
                Role.SUBMITTER,
                {200: JobView, **with_job, 409: Problem},
                body=CancelBody,
                body_required=False,
            ),
            Endpoint(
                "POST",
                job + "/requeue",
                "requeue_job",
                "Requeue a dead-lettered job.",
                self.requeue,
                Role.ADMIN,
                {200: JobView, **with_job, 409: Problem},
            ),
            Endpoint(
                "POST",
                "/v1/claim",
                "claim_jobs",
                "Lease jobs (long-polls with wait_seconds).",
                self.claim,
                Role.WORKER,
                {200: ClaimResponse, **common, 409: Problem, 422: Problem},
                body=ClaimBody,
                tag="workers",
            ),
            Endpoint(
                "POST",
                "/v1/claim/stream",
                "claim_jobs_stream",
                "Lease jobs as they come, on one request (NDJSON).",
                self.claim_stream,
                Role.WORKER,
                {
                    200: LinesOf(
                        ClaimedJob,
                        ((STREAM_HEADER, "with refill: the stream's id, for POST /v1/claim/room"),),
                    ),
                    **common,
                    409: Problem,
                    422: Problem,
                },
                body=ClaimBody,
                tag="workers",
                description="The claim of POST /v1/claim, answered as a stream: each leased job is "
                "written as one line as soon as it is leased (handed over by a submit, or claimed "
                "when work is announced), and the stream ends once max_jobs jobs were written or "
                "wait_seconds have passed. A worker keeps one stream open instead of asking again "
                "after every job. A refusal before the first job is an ordinary problem response. "
                "With refill, the response's Fleetlog-Stream header names the stream, and the worker "
                "gives it room as its handler slots free (POST /v1/claim/room): the stream stays open "
                "past max_jobs, until wait_seconds, or until it has had no room for a moment.",
            ),
            Endpoint(
                "POST",
                "/v1/claim/room",
                "add_claim_room",
                "Give a refilled claim stream room for more jobs.",
                self.add_room,
                Role.WORKER,
                {200: RoomResult, 202: RoomResult, **common, 404: Problem, 422: Problem, 503: Problem},
                body=RoomBody,
                tag="workers",
                description="The worker freed handler slots: the claim stream it opened with refill "
                "may be given that many more jobs (100 at most in all). 200 with the stream's room "
                "when this server process holds it; 202 when another process does (several `serve` "
                "processes on one PostgreSQL): the room is forwarded to it and given to the stream "
                "if it is still open. 404 when the stream is this process's and no such stream of "
                "this worker is open (it ended; on SQLite also any stream not open here): the worker "
                "then lets that stream end and opens the next one. 503 when a forward could not be "
                "sent.",
            ),
            Endpoint(
                "POST",
                "/v1/completions",
                "complete_jobs",
                "Report many finished attempts in one transaction.",
                self.complete,
                Role.WORKER,
                {200: BatchResult, **common, 422: Problem},
                body=CompletionBatch,
                tag="workers",
            ),
            Endpoint(
                "POST",
                job + "/lease/renew",
                "renew_lease",
                "Extend a lease.",
                self.renew,
                Role.WORKER,
                {200: RenewResult, **with_job, 409: Problem},
                body=RenewBody,
                tag="workers",
            ),
            Endpoint(
                "POST",
                job + "/lease/release",
                "release_lease",
                "Give a leased job back to the queue.",
                self.release,
                Role.WORKER,
                {200: JobView, **with_job, 409: Problem},
                body=ReleaseBody,
                tag="workers",
            ),
            Endpoint(
                "POST",
                "/v1/factories/heartbeat",
                "factory_heartbeat",
                "A factory says it is alive.",
                self.heartbeat,
                Role.WORKER,
                {200: FactoryView, **common, 422: Problem},
                body=FactoryReport,
                tag="workers",
            ),
            Endpoint(
                "GET",
                "/v1/factories",
                "list_factories",
                "Factories, with stale/down detection.",
                self.factories,
                Role.READER,
                {200: FACTORIES, **common},
                tag="workers",
            ),
            Endpoint(
                "PUT",
                "/v1/tenants/{tenant}/quotas",
                "set_quotas",
                "Set a tenant's admission quotas.",
                self.put_quotas,
                Role.ADMIN,
                {200: QuotaView, **common, 404: Problem, 422: Problem},
                body=TenantQuotas,
                tag="tenants",
            ),
            Endpoint(
                "GET",
                "/v1/tenants/{tenant}/quotas",
                "get_quotas",
                "A tenant's quotas, usage and refusals.",
                self.get_quotas,
                Role.READER,
                {200: QuotaView, **common, 404: Problem, 422: Problem},
                tag="tenants",
            ),
        ]
