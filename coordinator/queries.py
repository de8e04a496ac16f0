"""Reading jobs: current state, listings, history, replay, runs."""

from __future__ import annotations

import base64
from uuid import UUID

from coordinator.context import Context
from coordinator.errors import InvalidRequest, NotFound
from coordinator.identity import Identity, Role
from coordinator.ports import JobFilter
from coordinator.views import HistoryEntry, JobPage, JobSummary, JobView, RunView
from domain.job import Job, JobState

MAX_PAGE = 500


def encode_cursor(cursor: UUID | None) -> str | None:
    """An opaque page cursor (the last id seen, in a form clients should not parse)."""
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(cursor.bytes).decode().rstrip("=")


def decode_cursor(text: str | None) -> UUID | None:
    if not text:
        return None
    try:
        return UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            "cursor",
            [{"loc": "cursor", "msg": f"not a cursor from a previous page ({exc})", "type": "value_error"}],
        ) from None


class Queries:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def _visible(self, identity: Identity, job: Job | None, job_id: UUID) -> Job:
        if job is None or not identity.sees(job.tenant):
            raise NotFound("job", job_id)
        return job

    def get(self, identity: Identity, job_id: UUID) -> JobView:
        identity.require(Role.READER, "read jobs")
        return JobView.of(self._visible(identity, self.ctx.store.get_job(job_id), job_id))

    def list_jobs(
        self,
        identity: Identity,
        *,
        states: tuple[str, ...] | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        parent_id: UUID | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        identity.require(Role.READER, "list jobs")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(
                "listing", [{"loc": "limit", "msg": f"must be 1-{MAX_PAGE}", "type": "range"}]
            )
        for state in states or ():
            if state not in {s.value for s in JobState}:
                allowed = ", ".join(s.value for s in JobState)
                raise InvalidRequest(
                    "listing",
                    [{"loc": "state", "msg": f"'{state}' is not a state ({allowed})", "type": "enum"}],
                )
        page = self.ctx.store.list_jobs(
            JobFilter(
                tenant=identity.tenant,
                states=states,
                queue=queue,
                idempotency_key=idempotency_key,
                parent_id=parent_id,
                limit=limit,
                after=decode_cursor(cursor),
            )
        )
        return JobPage(
            jobs=[JobSummary.of(r) for r in page.rows], next_cursor=encode_cursor(page.next_cursor)
        )

    def history(self, identity: Identity, job_id: UUID) -> list[HistoryEntry]:
        """The job's whole event stream, in order."""
        identity.require(Role.READER, "read history")
        self._visible(identity, self.ctx.store.get_job(job_id), job_id)
        return [HistoryEntry.of(e) for e in self.ctx.store.job_events(job_id)]

    def state_at(self, identity: Identity, job_id: UUID, version: int) -> JobView:
        """The job as it was after event ``version`` (rebuilt by replaying its stream)."""
        identity.require(Role.READER, "replay jobs")
        current = self._visible(identity, self.ctx.store.get_job(job_id), job_id)
        if not 1 <= version <= current.version:
            raise InvalidRequest(
                "version",
                [
                    {
                        "loc": "version",
                        "msg": f"job {job_id} has versions 1-{current.version}",
                        "type": "range",
                    }
                ],
            )
        return JobView.of(self._visible(identity, self.ctx.store.job_at(job_id, version), job_id))

    def runs(self, identity: Identity, job_id: UUID) -> list[RunView]:
        identity.require(Role.READER, "read runs")
        job = self._visible(identity, self.ctx.store.get_job(job_id), job_id)
        return [RunView.of(run) for run in job.runs]
