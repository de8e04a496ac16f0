"""A bounded cache of parsed job specs: specs never change after submit, so a job's
spec is parsed once per process instead of on every transition."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from uuid import UUID

from domain.job import JobSpec
from domain.limits import STORED


class SpecCache:
    def __init__(self, maxsize: int = 50_000):
        self.maxsize = maxsize
        self._items: OrderedDict[UUID, JobSpec] = OrderedDict()
        self._lock = Lock()

    def get(self, job_id: UUID, spec_json: str) -> JobSpec:
        with self._lock:
            spec = self._items.get(job_id)
            if spec is not None:
                self._items.move_to_end(job_id)
                return spec
        spec = JobSpec.model_validate_json(spec_json, context=STORED)
        self.put(job_id, spec)
        return spec

    def put(self, job_id: UUID, spec: JobSpec) -> None:
        with self._lock:
            self._items[job_id] = spec
            self._items.move_to_end(job_id)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
