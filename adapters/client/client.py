"""``FleetClient``: the HTTP API as typed, synchronous Python calls.

One method per route, answering the coordinator's own view models (``JobView``,
``ClaimedJob``, ``ItemResult``...) and raising the exceptions the coordinator raised
(``StaleEpoch``, ``NotFound``, ``Forbidden``, ``Unauthenticated``, ``Unavailable``...;
see ``errors.py``). Request bodies are validated with the server's own wire models
before they are sent, so a bad call fails here with ``InvalidRequest``, as it would
there. Thread-safe: one client can serve every thread of a worker.

Which calls are retried, and when, is ``retry.py``'s business: reads, PUTs,
heartbeats, renewals and keyed submits on any transient failure; everything else only
when it surely never reached the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

from adapters.client.errors import ApiError
from adapters.client.interrupt import Interrupter
from adapters.client.retry import RetryPolicy
from adapters.client.session import DEFAULT_TIMEOUT_SECONDS, Session
from adapters.http.schemas import (
    STREAM_HEADER,
    BatchSubmit,
    CancelBody,
    ClaimBody,
    CompletionBatch,
    PatchJob,
    ReleaseBody,
    RenewBody,
    RoomBody,
    RoomResult,
)
from coordinator.claiming import ClaimRequest
from coordinator.errors import InvalidRequest, Unavailable, validation_errors
from coordinator.reporting import Completion
from coordinator.views import (
    ClaimedJob,
    FactoryView,
    HistoryEntry,
    ItemResult,
    JobPage,
    JobSummary,
    JobView,
    QuotaView,
    RenewResult,
    RunView,
    SubmitResult,
)
from domain.factory import FactoryReport
from domain.job import JobSpec
from domain.job.spec import ErrorInfo, RunInsights
from domain.tenant import TenantQuotas

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""An argument left out (``checkpoint=None`` is a checkpoint: JSON null)."""


class _Claimed(BaseModel):
    jobs: list[ClaimedJob]


class _Results(BaseModel):
    results: list[ItemResult]


_RUNS = TypeAdapter(list[RunView])
_EVENTS = TypeAdapter(list[HistoryEntry])
_FACTORIES = TypeAdapter(list[FactoryView])
_OBJECT = TypeAdapter(dict[str, Any])


def _model(cls: type[M], data: Any, what: str) -> M:
    """Validate a request body here, as the server would."""
    if isinstance(data, cls):
        return data
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(what, validation_errors(exc)) from None


def _wire(model: BaseModel) -> dict[str, Any]:
    # exclude_unset: a field left out stays out (PATCH tells null from absent).
    return model.model_dump(mode="json", exclude_unset=True)


def _spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    return _model(JobSpec, spec, "job spec")


def _job(job_id: UUID | str) -> str:
    return f"/v1/jobs/{UUID(str(job_id))}"


def _quotas(tenant: str) -> str:
    return f"/v1/tenants/{quote(tenant, safe='')}/quotas"


class FleetClient:
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
        """``timeout``: seconds for connecting and for each read (a long-poll claim
        adds its ``wait_seconds``). ``transport``: an httpx transport (tests)."""
        self._session = Session(
            base_url,
            token,
            timeout=timeout,
            retry=retry,
            transport=transport,
            max_connections=max_connections,
        )

    @property
    def base_url(self) -> str:
        return self._session.base_url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ health

    def healthz(self) -> dict[str, Any]:
        return self._session.call("GET", "/healthz", _json_object, safe=True)

    def readyz(self) -> dict[str, Any]:
        return self._session.call("GET", "/readyz", _json_object, safe=True)

    # -------------------------------------------------------- submitters

    def submit(
        self, spec: JobSpec | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> SubmitResult:
        """Safe to retry (and retried) only with an idempotency key, in the spec or here."""
        job = _spec(spec)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        keyed = bool(idempotency_key or job.idempotency_key)
        return self._session.call(
            "POST", "/v1/jobs", _parser(SubmitResult), safe=keyed, body=_wire(job), headers=headers
        )

    def submit_batch(self, specs: Sequence[JobSpec | Mapping[str, Any]]) -> list[ItemResult]:
        """Up to 1,000 specs in one transaction; retried only when every spec has a key."""
        batch = _model(BatchSubmit, {"jobs": [_spec(s) for s in specs]}, "batch")
        keyed = all(spec.idempotency_key for spec in batch.jobs)
        body = {"jobs": [_wire(spec) for spec in batch.jobs]}
        return self._session.call("POST", "/v1/jobs/batch", _results, safe=keyed, body=body)

    def cancel(self, job_id: UUID | str, reason: str | None = None) -> JobView:
        body = _wire(_model(CancelBody, {} if reason is None else {"reason": reason}, "cancel"))
        return self._session.call("POST", _job(job_id) + "/cancel", _parser(JobView), safe=False, body=body)

    def requeue(self, job_id: UUID | str) -> JobView:
        return self._session.call("POST", _job(job_id) + "/requeue", _parser(JobView), safe=False)

    # ----------------------------------------------------------- readers

    def list_jobs(
        self,
        *,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        parent_id: UUID | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page; pass ``next_cursor`` back as ``cursor`` for the next (or use
        ``iter_jobs``)."""
        states = [state] if isinstance(state, str) else list(state or [])
        given = {
            "state": ",".join(states) or None,
            "queue": queue,
            "idempotency_key": idempotency_key,
            "parent_id": None if parent_id is None else str(parent_id),
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        params = {k: v for k, v in given.items() if v is not None}
        return self._session.call("GET", "/v1/jobs", _parser(JobPage), safe=True, params=params)

    def iter_jobs(self, **filters: Any) -> Iterator[JobSummary]:
        """Every matching job summary, page after page (``list_jobs``'s filters)."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_jobs(cursor=cursor, **filters)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_job(self, job_id: UUID | str) -> JobView:
        return self._session.call("GET", _job(job_id), _parser(JobView), safe=True)

    def runs(self, job_id: UUID | str) -> list[RunView]:
        return self._session.call("GET", _job(job_id) + "/runs", _list(_RUNS), safe=True)

    def history(self, job_id: UUID | str) -> list[HistoryEntry]:
        return self._session.call("GET", _job(job_id) + "/events", _list(_EVENTS), safe=True)

    def state_at(self, job_id: UUID | str, version: int) -> JobView:
        params = {"version": str(version)}
        return self._session.call("GET", _job(job_id) + "/state", _parser(JobView), safe=True, params=params)

    def list_factories(self) -> list[FactoryView]:
        return self._session.call("GET", "/v1/factories", _list(_FACTORIES), safe=True)

    # ----------------------------------------------------------- workers

    def heartbeat(self, report: FactoryReport | Mapping[str, Any]) -> FactoryView:
        """A heartbeat states the whole report: sending it twice says the same thing."""
        body = _wire(_model(FactoryReport, report, "heartbeat"))
        return self._session.call(
            "POST", "/v1/factories/heartbeat", _parser(FactoryView), safe=True, body=body
        )

    def claim(
        self,
        request: ClaimRequest | Mapping[str, Any],
        *,
        wait_seconds: float = 0.0,
        interrupter: Interrupter | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``max_jobs`` (at most 100) jobs. With ``wait_seconds`` and nothing
        ready, the server holds the request until work comes or the wait ends.

        Never retried once it may have reached the server: its answer lost, the leases
        it granted expire unworked and the reaper requeues the jobs. ``interrupter``:
        ``fire()`` from another thread makes a waiting claim return ``[]`` at once."""
        fields = request.model_dump(exclude_unset=True) if isinstance(request, ClaimRequest) else request
        body = _wire(_model(ClaimBody, {**fields, "wait_seconds": wait_seconds}, "claim"))
        if interrupter is None or wait_seconds <= 0:
            return self._session.call(
                "POST", "/v1/claim", _claimed, safe=False, body=body, wait_seconds=wait_seconds
            )
        with interrupter.watch() as watch:
            try:
                return self._session.call(
                    "POST",
                    "/v1/claim",
                    _claimed,
                    safe=False,
                    body=body,
                    wait_seconds=wait_seconds,
                    watch=watch,
                )
            except Unavailable:
                if watch.fired:
                    return []
                raise

    def claim_stream(
        self,
        request: ClaimRequest | Mapping[str, Any],
        *,
        wait_seconds: float,
        interrupter: Interrupter,
        refill: Callable[[str], None] | None = None,
        lane: str | None = None,
    ) -> Iterator[ClaimedJob]:
        """Lease up to ``max_jobs`` jobs on one request (``POST /v1/claim/stream``): each
        job as soon as it is leased, for up to ``wait_seconds``. On this thread's
        long-poll connection; never retried once it may have reached the server (as
        ``claim``). ``interrupter.fire()`` from another thread ends it at once (what was
        read stays read). Iterate it to the end: the connection is reused only then.
        ``refill``: ask for a stream the caller gives room as its slots free
        (``add_room``); called with the stream's id once the server has accepted it.
        ``lane``: the long-poll connection to use, by name, when the caller's threads take
        turns claiming (default: this thread's own)."""
        fields = request.model_dump(exclude_unset=True) if isinstance(request, ClaimRequest) else request
        given = {**fields, "wait_seconds": wait_seconds} | ({} if refill is None else {"refill": True})
        body = _wire(_model(ClaimBody, given, "claim"))

        def opened(headers: httpx.Headers) -> None:
            if refill is not None:
                stream_id = headers.get(STREAM_HEADER)
                if stream_id is None:
                    raise ApiError(
                        "bad-response",
                        200,
                        f"POST /v1/claim/stream: no {STREAM_HEADER} header on a refilled stream "
                        "(a different Fleetlog version?)",
                    )
                refill(stream_id)

        with interrupter.watch() as watch:
            lines = self._session.lines(
                "POST",
                "/v1/claim/stream",
                ClaimedJob.model_validate_json,
                body=body,
                wait_seconds=wait_seconds,
                watch=watch,
                opened=opened,
                lane=lane,
            )
            try:
                yield from lines
            except Unavailable:
                if not watch.fired:
                    raise

    def add_room(self, stream_id: str, jobs: int) -> RoomResult:
        """``POST /v1/claim/room``: the refilled claim stream ``stream_id`` may be given
        ``jobs`` more. Never retried once it may have reached the server (a repeat would
        give the room twice). ``room`` is None and ``forwarded`` true when another server
        process holds the stream: the room was forwarded to it. ``NotFound`` when the
        stream is not open (it ended)."""
        body = _wire(_model(RoomBody, {"stream": stream_id, "jobs": jobs}, "room"))
        return self._session.call(
            "POST", "/v1/claim/room", _parser(RoomResult), safe=False, body=body, lean=True
        )

    def renew(self, job_id: UUID | str, epoch: int, lease_seconds: float | None = None) -> RenewResult:
        """Retried like a read: a repeat extends the lease again (one more renewal)."""
        given = (
            {"epoch": epoch} if lease_seconds is None else {"epoch": epoch, "lease_seconds": lease_seconds}
        )
        body = _wire(_model(RenewBody, given, "renewal"))
        path = _job(job_id) + "/lease/renew"
        return self._session.call("POST", path, _parser(RenewResult), safe=True, body=body)

    def release(self, job_id: UUID | str, epoch: int, reason: str | None = None) -> JobView:
        given: dict[str, Any] = {"epoch": epoch} if reason is None else {"epoch": epoch, "reason": reason}
        body = _wire(_model(ReleaseBody, given, "release"))
        path = _job(job_id) + "/lease/release"
        return self._session.call("POST", path, _parser(JobView), safe=False, body=body)

    def update_job(
        self,
        job_id: UUID | str,
        epoch: int,
        *,
        state: Literal["running", "succeeded", "failed"] | None = None,
        phase: str | None = None,
        checkpoint: JsonValue | _Unset = UNSET,
        result: JsonValue | _Unset = UNSET,
        error: ErrorInfo | Mapping[str, Any] | None = None,
        insights: RunInsights | Mapping[str, Any] | None = None,
    ) -> JobView:
        """``PATCH /v1/jobs/{id}``: one fenced write (start, phase, checkpoint, insights,
        outcome, in that order); ``StaleEpoch`` when the epoch no longer holds the job."""
        given: dict[str, Any] = {"epoch": epoch}
        optional = {"state": state, "phase": phase, "error": error, "insights": insights}
        given.update({k: v for k, v in optional.items() if v is not None})
        if checkpoint is not UNSET:
            given["checkpoint"] = checkpoint
        if result is not UNSET:
            given["result"] = result
        body = _wire(_model(PatchJob, given, "job update"))
        return self._session.call("PATCH", _job(job_id), _parser(JobView), safe=False, body=body)

    def start(self, job_id: UUID | str, epoch: int) -> JobView:
        return self.update_job(job_id, epoch, state="running")

    def report_phase(self, job_id: UUID | str, epoch: int, phase: str) -> JobView:
        return self.update_job(job_id, epoch, phase=phase)

    def checkpoint(self, job_id: UUID | str, epoch: int, data: JsonValue) -> JobView:
        return self.update_job(job_id, epoch, checkpoint=data)

    def report_insights(
        self, job_id: UUID | str, epoch: int, insights: RunInsights | Mapping[str, Any]
    ) -> JobView:
        return self.update_job(job_id, epoch, insights=insights)

    def succeed(
        self,
        job_id: UUID | str,
        epoch: int,
        result: JsonValue = None,
        insights: RunInsights | Mapping[str, Any] | None = None,
    ) -> JobView:
        return self.update_job(job_id, epoch, state="succeeded", result=result, insights=insights)

    def fail(
        self,
        job_id: UUID | str,
        epoch: int,
        error: ErrorInfo | Mapping[str, Any],
        insights: RunInsights | Mapping[str, Any] | None = None,
    ) -> JobView:
        return self.update_job(job_id, epoch, state="failed", error=error, insights=insights)

    def complete(self, completions: Sequence[Completion | Mapping[str, Any]]) -> list[ItemResult]:
        """Many finished attempts in one transaction; each item is accepted or refused on
        its own (``error.code`` ``stale-epoch`` for a lost lease)."""
        if not completions:
            return []
        batch = _model(CompletionBatch, {"completions": list(completions)}, "completions")
        body = {"completions": [_wire(c) for c in batch.completions]}
        return self._session.call("POST", "/v1/completions", _results, safe=False, body=body, lean=True)

    # ------------------------------------------------------------ admins

    def put_quotas(self, tenant: str, quotas: TenantQuotas | Mapping[str, Any]) -> QuotaView:
        """Replace the tenant's quotas (admin); a repeat sets the same ones again."""
        body = _wire(_model(TenantQuotas, quotas, "quotas"))
        return self._session.call("PUT", _quotas(tenant), _parser(QuotaView), safe=True, body=body)

    def get_quotas(self, tenant: str) -> QuotaView:
        return self._session.call("GET", _quotas(tenant), _parser(QuotaView), safe=True)


# ------------------------------------------------------------ parsing answers


def _parser(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _list(adapter: TypeAdapter[list[T]]) -> Callable[[httpx.Response], list[T]]:
    return lambda response: adapter.validate_json(response.content)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    return _OBJECT.validate_json(response.content)


def _claimed(response: httpx.Response) -> list[ClaimedJob]:
    return _Claimed.model_validate_json(response.content).jobs


def _results(response: httpx.Response) -> list[ItemResult]:
    return _Results.model_validate_json(response.content).results
