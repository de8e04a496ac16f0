"""The ``fleetlog`` console script end to end, in child processes, on SQLite and on
PostgreSQL. Each test walks one workflow; finer cases run in-process in
``test_cli_details.py``."""

from __future__ import annotations

import json
import time
import uuid

from adapters.store.migrate import migrations
from tests.acceptance.cli_runner import Cli


def test_submit_list_and_idempotent_resubmit(cli: Cli) -> None:
    # Given a store whose migrations are applied
    first_migrate = cli("migrate", tenant=None)
    known = {f"{m.version:04d}_{m.name}" for m in migrations("sqlite")}
    assert set(first_migrate.json()["applied"]) <= known
    assert cli("migrate", tenant=None).json()["applied"] == []

    # When a job is submitted from a JSON spec, with flags overriding some of its keys
    spec = {"queue": "ingest", "priority": "low", "payload": {"n": 1}, "idempotency_key": "k-1"}
    submit = (
        "submit",
        *("--spec", json.dumps(spec)),
        *("--queue", "render", "--priority", "high", "--capabilities", "gpu,cpu"),
        *("--max-attempts", "5", "--phases", "plan,build"),
    )
    created = cli(*submit).json()

    # Then the flags won over the spec, and the rest of the spec was kept
    job = created["job"]
    assert created["outcome"] == "created"
    assert (job["queue"], job["priority"], job["capabilities"]) == ("render", 10, ["cpu", "gpu"])
    assert (job["max_attempts"], job["phases"], job["payload"]) == (5, ["plan", "build"], {"n": 1})
    assert (job["tenant"], job["state"], job["idempotency_key"]) == ("acme", "queued", "k-1")

    # When the same submission is repeated
    again = cli(*submit).json()

    # Then it answers with the job already there
    assert again["outcome"] == "existing"
    assert again["job"]["id"] == job["id"]

    # When queued jobs are listed as a table
    listing = cli("jobs", "--state", "queued", "--format", "table")

    # Then the job appears once, under the documented columns
    lines = listing.out.splitlines()
    assert listing.code == 0
    assert lines[0].split() == [
        "ID",
        "STATE",
        "QUEUE",
        "PRIORITY",
        "ATTEMPTS",
        "EPOCH",
        "PHASE",
        "CREATED_AT",
    ]
    assert [line.split()[:4] for line in lines[1:-1]] == [[job["id"], "queued", "render", "10"]]
    assert lines[-1] == "last page"

    # And a job that does not exist is refused with not-found, as JSON on stderr
    missing = str(uuid.uuid4())
    assert cli("show", missing).error() == {
        "error": "not-found",
        "message": f"job {missing} not found",
        "kind": "job",
        "id": missing,
    }


def test_worker_lifecycle_is_fenced_and_recorded(cli: Cli) -> None:
    # Given a job with phases, and a factory that announced itself
    job_id = cli("submit", "--payload", '{"task": "build"}', "--phases", "plan,build").json()["job"]["id"]
    factory = cli("heartbeat", "--factory", "f-1", "--seat-limit", "2", tenant=None).json()
    assert (factory["factory_id"], factory["health"], factory["seat_limit"]) == ("f-1", "ok", 2)

    # When the factory claims it and reports its progress under the lease's epoch
    claimed = cli("claim", "--factory", "f-1").json()
    assert [c["job"]["id"] for c in claimed] == [job_id]
    epoch = str(claimed[0]["epoch"])
    assert cli("start", job_id, "--epoch", epoch).json()["state"] == "running"
    assert cli("phase", job_id, "--epoch", epoch, "--phase", "plan").json()["phase"] == "plan"
    saved = cli("checkpoint", job_id, "--epoch", epoch, "--data", '{"step": 3}').json()
    assert saved["checkpoint"] == {"step": 3}

    # And a write presents an epoch that does not hold the lease
    stale = cli("renew", job_id, "--epoch", str(int(epoch) + 1)).error()

    # Then that write is refused as stale, naming both epochs
    assert stale["error"] == "stale-epoch"
    assert (stale["presented_epoch"], stale["current_epoch"]) == (int(epoch) + 1, int(epoch))

    # When the holder finishes the job
    result = '{"artifact": "s3://out/1"}'
    done = cli("succeed", job_id, "--epoch", epoch, "--result", result, "--insights", '{"tokens_in": 7}')

    # Then it succeeded, and its history tells the whole story, refusal included
    assert (done.json()["state"], done.json()["result"]) == ("succeeded", {"artifact": "s3://out/1"})
    history = cli("history", job_id, "--format", "table").out.splitlines()
    assert history[0].split() == ["VERSION", "TYPE", "AT", "SUMMARY"]
    assert [line.split()[1] for line in history[1:]] == [
        "JobSubmitted",
        "LeaseGranted",
        "JobStarted",
        "PhaseReported",
        "Checkpointed",
        "StaleWriteRejected",
        "JobSucceeded",
    ]

    # And replaying to version 1 gives the job as submitted
    assert cli("replay", job_id, "--version", "1").json()["state"] == "queued"

    # And the views still equal a rebuild from the log
    verify = cli("projections", "verify", tenant=None)
    assert verify.code == 0
    assert verify.json()["ok"] is True


def test_dead_letter_requeue_reap_and_cancel(cli: Cli) -> None:
    # Given a claimed job
    job_id = cli("submit", "--payload", "{}").json()["job"]["id"]
    first_epoch = cli("claim", "--factory", "f-1").json()[0]["epoch"]

    # When its worker fails it as not retryable
    failed = cli(
        "fail", job_id, "--epoch", str(first_epoch), "--kind", "crash", "--message", "boom", "--not-retryable"
    ).json()

    # Then it is dead-lettered with the error, and an operator can requeue it
    assert (failed["state"], failed["error"]["kind"], failed["error"]["retryable"]) == (
        "dead_letter",
        "crash",
        False,
    )
    assert cli("requeue", job_id).json()["state"] == "queued"

    # When it is claimed again with a short lease that then runs out
    second = cli("claim", "--factory", "f-1", "--lease-seconds", "0.5").json()
    assert second[0]["epoch"] > first_epoch
    time.sleep(0.6)
    reaped = cli("reap", tenant=None).json()

    # Then the reaper expires the lease and returns the job to the queue
    assert reaped == {"expired": 1, "requeued": 1, "blocked": 0, "dead_lettered": 0, "factories_down": 0}

    # When the submitter cancels it
    cancelled = cli("cancel", job_id, "--reason", "no longer needed").json()

    # Then it is cancelled with the reason
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "no longer needed")
