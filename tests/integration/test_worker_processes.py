"""Worker processes against a real store: a worker killed with SIGKILL mid-job loses
its lease to the reaper, another process finishes the job from its checkpoint, and
the dead worker's epoch stays fenced off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.bootstrap import Settings, build_app
from adapters.worker.examples import resume_point
from adapters.worker.processes import WorkerProcess, worker_args
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from coordinator.views import JobView
from domain.errors import StaleEpoch
from tests.integration.worker_helpers import SUBMITTER, events, reaper_running, wait_until

pytestmark = pytest.mark.slow

OPTIONS = [
    "--concurrency", "1",
    "--lease-seconds", "2",
    "--heartbeat-timeout", "1.5",
    "--heartbeat-interval", "0.3",
    "--grace-seconds", "2",
]  # fmt: skip


@pytest.fixture
def live_fleet(backend: Settings) -> Iterator[Fleet]:
    app = build_app(backend)
    try:
        yield app
    finally:
        app.close()


def spawn(name: str, backend: Settings, logs: Path) -> WorkerProcess:
    args = worker_args(
        handlers="adapters.worker.examples:HANDLERS",
        data_dir=backend.data_dir,
        database_url=backend.database_url,
        options=OPTIONS,
    )
    return WorkerProcess(name, args, logs / f"{name}.log")


def test_a_killed_worker_process_is_reaped_and_another_finishes_from_its_checkpoint(
    backend: Settings, live_fleet: Fleet, tmp_path: Path
) -> None:
    # Given a 3-second job running in worker process A, some checkpoints in
    spec = {"queue": "sleep", "lease_seconds": 2, "payload": {"seconds": 3.0, "step": 0.1}}
    job = live_fleet.submit(SUBMITTER, spec).job
    a = spawn("proc-a", backend, tmp_path)
    b: WorkerProcess | None = None
    try:

        def mid_job() -> JobView | None:
            assert a.alive, "\n".join(a.log_tail())
            view = live_fleet.get(SUBMITTER, job.id)
            return view if view.state == "running" and resume_point(view.checkpoint) >= 3 else None

        epoch_a = wait_until(mid_job, timeout=30, what="A to be mid-job").epoch

        # When A is killed outright and worker process B starts, with the reaper running
        a.kill()
        done_at_kill = resume_point(live_fleet.get(SUBMITTER, job.id).checkpoint)
        b = spawn("proc-b", backend, tmp_path)
        with reaper_running(live_fleet, every=0.1):
            wait_until(
                lambda: live_fleet.get(SUBMITTER, job.id).state == "succeeded",
                timeout=30,
                what="B to finish the job",
            )

        # Then A's lease was expired by the reaper and B took over under a newer epoch
        [expired] = events(live_fleet, job.id, "LeaseExpired")
        assert expired.data["epoch"] == epoch_a
        assert expired.data["reason"] in ("factory_down", "lease_timeout")
        takeover = events(live_fleet, job.id, "LeaseGranted")[-1]
        assert takeover.data["factory_id"] == "proc-b"
        assert takeover.data["epoch"] > epoch_a
        # And B resumed from A's last checkpoint rather than from the start
        view = live_fleet.get(SUBMITTER, job.id)
        assert isinstance(view.result, dict)
        assert view.result["resumed_from"] == done_at_kill >= 3
        first_of_b = next(
            e for e in events(live_fleet, job.id, "Checkpointed") if e.data["epoch"] == takeover.data["epoch"]
        )
        assert first_of_b.data["checkpoint"] == {"done": done_at_kill + 1}

        # When A's late write arrives with its old epoch
        dead_worker = Identity.of("worker:proc-a", None, Role.WORKER)
        with pytest.raises(StaleEpoch) as refused:
            live_fleet.checkpoint(dead_worker, job.id, epoch_a, {"done": 99})

        # Then it is refused, recorded, and changes nothing
        assert refused.value.fields["current_epoch"] > epoch_a
        rejection = events(live_fleet, job.id, "StaleWriteRejected")[-1]
        assert rejection.data["presented_epoch"] == epoch_a
        assert rejection.data["command"] == "checkpoint"
        assert live_fleet.get(SUBMITTER, job.id).checkpoint == {"done": 30}
        assert b.stop() == 0
    finally:
        a.close()
        if b is not None:
            b.close()
