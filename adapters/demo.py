"""``fleetlog demo``: a zombie worker, its reaped lease, a refused late write.

On a fresh embedded store it submits a small dependency graph for two tenants, starts
three worker processes plus the reaper and scheduler, freezes (SIGSTOP) a worker in
the middle of a job, waits for the reaper to expire its lease and another worker to
finish the job from its checkpoint, resumes the zombie (SIGCONT) so that its late
write is refused, kills it, and prints the story from the event log.

``python -m adapters.demo [--data-dir DIR]``; exit status 0 when the story happened.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar
from uuid import UUID

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.bootstrap import Settings, build_app
from adapters.demo_analytics import AnalyticsEpilogueFailed, print_analytics, runtime_for
from adapters.demo_report import compact, print_report
from adapters.worker.examples import resume_point
from adapters.worker.processes import WorkerProcess, worker_args
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.reaper import ReaperConfig
from coordinator.scheduler import SchedulerConfig
from coordinator.views import HistoryEntry, JobView
from domain.errors import DomainError

T = TypeVar("T")

TENANTS = ("alpha", "beta")
WORKERS = ("worker-1", "worker-2", "worker-3")
HANDLERS = "adapters.worker.examples:HANDLERS"
LEASE_SECONDS = 3.0
HEARTBEAT_TIMEOUT = 2.0
HEARTBEAT_INTERVAL = 0.4
SERVICE_INTERVAL = 0.2
STEP = 0.1
WAIT_SECONDS = 20.0
"""Longest wait for any one step of the story."""


class DemoFailed(Exception):
    pass


def graph(fetch: UUID | None = None, a: UUID | None = None, b: UUID | None = None) -> dict[str, Any]:
    """Per tenant: fetch -> transform-a (soft: once fetch reaches 'parse'),
    fetch -> transform-b (hard), both -> report."""

    def sleeper(seconds: float, **extra: object) -> dict[str, Any]:
        spec = {
            "queue": "sleep",
            "lease_seconds": LEASE_SECONDS,
            "payload": {"seconds": seconds, "step": STEP},
        }
        return {**spec, **extra}

    return {
        "fetch": sleeper(1.6, phases=["download", "parse"]),
        "transform-a": sleeper(2.4, deps=[{"job_id": str(fetch), "mode": "soft", "milestone": "parse"}]),
        "transform-b": sleeper(1.2, deps=[str(fetch)]),
        "report": {"queue": "noop", "lease_seconds": LEASE_SECONDS, "deps": [str(a), str(b)]},
    }


def fresh_dir(base: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        path = base / (f"demo-{stamp}" if n == 1 else f"demo-{stamp}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise DemoFailed(f"cannot create a fresh demo directory under {base}")


class Demo:
    def __init__(self, fleet: Fleet, root: Path, out: TextIO, analytics: AnalyticsRuntime):
        self.fleet = fleet
        self.analytics = analytics
        self.root = root
        self.out = out
        self.admin = Identity.of("demo", None)
        self.labels: dict[UUID, str] = {}
        self.workers: dict[str, WorkerProcess] = {}
        self.stop_services = threading.Event()
        self.services: list[threading.Thread] = []
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)

    # --------------------------------------------------------------- narration

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f}s] {message}", file=self.out, flush=True)

    def rel(self, at: datetime | str | None) -> str:
        if at is None:
            return "never"
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        return f"+{(moment - self.started_at).total_seconds():.2f}s"

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = probe()
            if found is not None:
                return found
            time.sleep(0.01)
        raise DemoFailed(f"{what}: not seen within {timeout:.0f}s")

    def history(self, job_id: UUID) -> list[HistoryEntry]:
        return self.fleet.history(self.admin, job_id)

    def view(self, job_id: UUID) -> JobView:
        return self.fleet.get(self.admin, job_id)

    # ------------------------------------------------------------------- story

    def run(self) -> None:
        self.submit()
        self.start_services()
        self.start_workers()
        zombie, job_id, epoch = self.freeze_a_busy_worker()
        self.await_reaping(zombie, job_id, epoch)
        self.resume_and_kill(zombie, job_id, epoch)
        self.await_all_done()
        self.stop_workers(exclude=zombie)
        self.report(job_id, epoch)
        try:
            print_analytics(self.fleet, self.analytics, self.out)
        except AnalyticsEpilogueFailed as exc:
            raise DemoFailed(str(exc)) from None
        self.halt_services()

    def submit(self) -> None:
        for tenant in TENANTS:
            who = Identity.of("demo", tenant)
            ids: dict[str, UUID] = {}
            for name in ("fetch", "transform-a", "transform-b", "report"):
                spec = graph(ids.get("fetch"), ids.get("transform-a"), ids.get("transform-b"))[name]
                ids[name] = self.fleet.submit(who, spec).job.id
                self.labels[ids[name]] = f"{tenant}/{name}"
        self.say(
            f"submitted {len(self.labels)} jobs for tenants {' and '.join(TENANTS)}: fetch -> transform-a "
            "(soft: starts once fetch reaches phase 'parse'), fetch -> transform-b, both -> report"
        )

    def start_services(self) -> None:
        services = (
            ("reaper", self.fleet.reaper.run),
            ("scheduler", self.fleet.scheduler.run),
            ("analytics", self.analytics.run),
        )
        for name, run in services:
            thread = threading.Thread(target=run, args=(self.stop_services,), name=name, daemon=True)
            thread.start()
            self.services.append(thread)
        self.say(
            f"reaper and scheduler running in this process (every {SERVICE_INTERVAL}s), and the "
            "consumer that follows the event log into ClickHouse"
        )

    def start_workers(self) -> None:
        options = [
            "--concurrency", "1",
            "--lease-seconds", str(LEASE_SECONDS),
            "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT),
            "--heartbeat-interval", str(HEARTBEAT_INTERVAL),
            "--grace-seconds", "5",
        ]  # fmt: skip
        args = worker_args(handlers=HANDLERS, data_dir=self.root, options=options)
        for factory_id in WORKERS:
            process = WorkerProcess(factory_id, args, self.root / f"{factory_id}.log")
            self.workers[factory_id] = process
        pids = ", ".join(f"{f} (pid {p.pid})" for f, p in self.workers.items())
        self.say(
            f"started worker processes {pids}: lease {LEASE_SECONDS:g}s, "
            f"heartbeat timeout {HEARTBEAT_TIMEOUT:g}s"
        )

        def all_up() -> bool | None:
            self.check_workers_alive()
            up = {f.factory_id for f in self.fleet.list_factories(self.admin) if f.health == "ok"}
            return True if up >= set(WORKERS) else None

        self.wait_for("all three workers registering", all_up)
        self.say("all three workers have registered with a heartbeat")

    def check_workers_alive(self, exclude: str | None = None) -> None:
        for factory_id, process in self.workers.items():
            if factory_id != exclude and not process.alive:
                raise DemoFailed(f"{factory_id} exited early with status {process.process.returncode}")

    def freeze_a_busy_worker(self) -> tuple[WorkerProcess, UUID, int]:
        def candidate() -> tuple[WorkerProcess, UUID, int] | None:
            self.check_workers_alive()
            for job_id in self.labels:
                view = self.view(job_id)
                if not self.mid_job(view) or view.lease is None:
                    continue
                process = self.workers[view.lease.factory_id]
                if self.freeze(process, job_id, view.epoch):
                    return process, job_id, view.epoch
            return None

        zombie, job_id, epoch = self.wait_for("a job running with a checkpoint", candidate)
        view = self.view(job_id)
        self.say(
            f"{self.labels[job_id]} is running on {zombie.factory_id} (epoch {epoch}) at checkpoint "
            f"{compact(view.checkpoint)}: froze {zombie.factory_id} with SIGSTOP - a zombie holding a lease"
        )
        return zombie, job_id, epoch

    def mid_job(self, view: JobView) -> bool:
        seconds = view.payload.get("seconds")
        if view.state != "running" or not isinstance(seconds, int | float):
            return False
        done = resume_point(view.checkpoint)
        return done >= 2 and seconds / STEP - done >= 6

    def freeze(self, process: WorkerProcess, job_id: UUID, epoch: int) -> bool:
        """SIGSTOP the process, unless that would freeze it holding the SQLite write lock
        (every other process would then stall) or the job moved on meanwhile."""
        process.freeze()
        view = self.view(job_id) if self.store_writable() else None
        if (
            view is not None
            and view.lease is not None
            and view.lease.epoch == epoch
            and view.state == "running"
        ):
            return True
        process.resume()
        time.sleep(0.02)
        return False

    def store_writable(self) -> bool:
        conn = sqlite3.connect(self.root / "fleetlog.db", timeout=1.0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    def await_reaping(self, zombie: WorkerProcess, job_id: UUID, epoch: int) -> None:
        label = self.labels[job_id]
        expired = self.wait_for(
            f"the reaper expiring {label}'s lease", lambda: self.event(job_id, "LeaseExpired", epoch)
        )
        self.say(
            f"the reaper expired {zombie.factory_id}'s lease on {label} ({expired.data['reason']}); "
            f"the job is queued again with checkpoint {compact(self.view(job_id).checkpoint)}"
        )
        granted = self.wait_for(f"another worker claiming {label}", lambda: self.later_grant(job_id, epoch))
        self.say(
            f"{granted.data['factory_id']} claimed {label} under epoch {granted.data['epoch']} "
            f"(attempt {granted.data['attempt']}) and resumes from the checkpoint"
        )
        done = self.wait_for(f"{label} succeeding", lambda: self.event(job_id, "JobSucceeded"))
        self.say(f"{label} succeeded on {granted.data['factory_id']}: {compact(done.data['result'])}")

    def resume_and_kill(self, zombie: WorkerProcess, job_id: UUID, epoch: int) -> None:
        self.await_empty_queue()
        zombie.resume()
        self.say(f"resumed {zombie.factory_id} with SIGCONT: it still believes it holds epoch {epoch}")
        refused = self.wait_for(
            f"{zombie.factory_id}'s late write being refused",
            lambda: self.event(job_id, "StaleWriteRejected", presented_epoch=epoch),
        )
        zombie.kill()
        self.say(
            f"its late {refused.data['command']} under epoch {epoch} was refused (current epoch "
            f"{refused.data['current_epoch']}) and recorded as StaleWriteRejected; killed "
            f"{zombie.factory_id} with SIGKILL"
        )
        again = [
            self.labels[j]
            for j in self.labels
            if (v := self.view(j)).lease and v.lease.factory_id == zombie.factory_id
        ]
        if again:
            self.say(
                f"{zombie.factory_id} had already claimed {', '.join(again)} again; the reaper will return it"
            )

    def await_empty_queue(self) -> None:
        """Wait until the live workers hold every claimable job: once resumed, the zombie
        rejoins with a heartbeat and would otherwise claim a job before it is killed
        (which the reaper would then have to return as well)."""

        def empty() -> bool | None:
            return None if any(self.view(j).state == "queued" for j in self.labels) else True

        try:
            self.wait_for("an empty queue", empty, timeout=10)
        except DemoFailed:
            return  # not needed for the story; the zombie may just claim one more job
        self.say("no job is waiting in the queue now, so the zombie will find nothing new to claim")

    def await_all_done(self) -> None:
        terminal = {"succeeded", "cancelled", "dead_letter", "superseded"}

        def all_done() -> dict[UUID, JobView] | None:
            views = {job_id: self.view(job_id) for job_id in self.labels}
            return views if all(v.state in terminal for v in views.values()) else None

        views = self.wait_for("every job finishing", all_done, timeout=40)
        failed = [f"{self.labels[j]}: {v.state}" for j, v in views.items() if v.state != "succeeded"]
        if failed:
            raise DemoFailed("jobs that did not succeed: " + ", ".join(failed))
        self.say(f"all {len(views)} jobs of both tenants succeeded")

    def stop_workers(self, exclude: WorkerProcess) -> None:
        codes = {f: p.stop() for f, p in self.workers.items() if p is not exclude}
        self.say("stopped " + ", ".join(f"{f} (exit {c})" for f, c in codes.items()) + " with SIGTERM")
        if any(codes.values()):
            raise DemoFailed(f"a worker did not stop cleanly: {codes}")

    def halt_services(self) -> None:
        self.stop_services.set()
        for thread in self.services:
            thread.join(10)

    # ----------------------------------------------------------------- helpers

    def event(
        self, job_id: UUID, kind: str, epoch: int | None = None, **match: object
    ) -> HistoryEntry | None:
        if epoch is not None:
            match["epoch"] = epoch
        for entry in self.history(job_id):
            if entry.type == kind and all(entry.data.get(k) == v for k, v in match.items()):
                return entry
        return None

    def later_grant(self, job_id: UUID, epoch: int) -> HistoryEntry | None:
        grants = [e for e in self.history(job_id) if e.type == "LeaseGranted" and e.data["epoch"] > epoch]
        return grants[0] if grants else None

    # ------------------------------------------------------------------ report

    def report(self, job_id: UUID, epoch: int) -> None:
        verdict = print_report(
            self.fleet, self.admin, labels=self.labels, job_id=job_id, epoch=epoch, rel=self.rel, out=self.out
        )
        if not verdict.ok:
            raise DemoFailed("the live views do not match a rebuild from the event log")

    def cleanup(self) -> None:
        self.stop_services.set()
        for process in self.workers.values():
            process.close()

    def show_logs(self) -> None:
        for factory_id, process in self.workers.items():
            print(f"--- last lines of {process.log_path.name} ({factory_id})", file=self.out)
            print("\n".join(process.log_tail(15)), file=self.out)


def run_demo(settings: Settings, out: TextIO) -> int:
    """Run the story on a fresh embedded store under ``settings.data_dir``; 0 if it
    happened as told, 1 (with the reason and the workers' logs) if not."""
    root = fresh_dir(settings.data_dir)
    demo_settings = Settings(
        data_dir=root,
        reaper=ReaperConfig(interval_seconds=SERVICE_INTERVAL),
        scheduler=SchedulerConfig(interval_seconds=SERVICE_INTERVAL),
    )
    print(f"Fleetlog demo on {demo_settings.describe()}", file=out)
    if settings.database_url:
        print("(the demo always runs on a fresh embedded store; DATABASE_URL is not used)", file=out)
    fleet = build_app(demo_settings)
    demo = Demo(fleet, root, out, runtime_for(fleet, demo_settings))
    try:
        demo.run()
    except (DemoFailed, DomainError) as exc:
        demo.say(f"DEMO FAILED: {exc}")
        demo.show_logs()
        return 1
    finally:
        demo.cleanup()
        for thread in demo.services:
            thread.join(10)
        demo.analytics.close()
        fleet.close()
    demo.say("the story happened as told")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetlog demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="where to create the demo's fresh store")
    args = parser.parse_args(argv)
    return run_demo(Settings.from_env(os.environ, data_dir=args.data_dir), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
