"""``fleetlog`` cases run in-process through ``main(argv)`` (the same parser, handlers
and error boundary as the console script), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from adapters.cli import read_commands
from tests.acceptance.cli_runner import Cli


def test_specs_from_stdin_file_and_batch(cli_main: Cli, tmp_path: Path) -> None:
    # Given a spec on stdin, another in a file, and a batch file with one bad item
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"queue": "files", "payload": {"from": "file"}}))
    batch_file = tmp_path / "batch.json"
    batch_file.write_text(json.dumps([{"payload": {"i": 0}}, {"priority": "urgent"}, {"queue": "b"}]))

    # When each is submitted
    from_stdin = cli_main("submit", "--spec", "-", stdin='{"queue": "stdin"}').json()
    from_file = cli_main("submit", "--spec-file", str(spec_file), "--format", "json").json()
    batch = cli_main("submit-batch", "--file", str(batch_file)).json()

    # Then each spec was read, and the batch answers item by item in request order
    assert from_stdin["job"]["queue"] == "stdin"
    assert (from_file["job"]["queue"], from_file["job"]["payload"]) == ("files", {"from": "file"})
    assert [(r["index"], r["ok"], r["outcome"]) for r in batch] == [
        (0, True, "created"),
        (1, False, None),
        (2, True, "created"),
    ]
    assert batch[1]["error"]["code"] == "invalid-request"
    assert "priority" in batch[1]["error"]["message"]

    # And the batch table summarises the refusals
    table = cli_main("submit-batch", "--file", str(batch_file), "--format", "table").out
    assert table.splitlines()[0].split() == ["INDEX", "OK", "JOB_ID", "OUTCOME", "STATE", "ERROR"]
    assert table.splitlines()[-1] == "2 submitted, 1 refused"


def test_listing_pages_with_a_cursor_and_filters(cli_main: Cli) -> None:
    # Given three jobs in two queues
    ids = [cli_main("submit", "--queue", q).json()["job"]["id"] for q in ("a", "b", "a")]

    # When they are listed two at a time
    first = cli_main("jobs", "--limit", "2").json()
    second = cli_main("jobs", "--limit", "2", "--cursor", first["next_cursor"]).json()

    # Then the pages follow each other, oldest first, and the last has no cursor
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids
    assert second["next_cursor"] is None

    # And filters narrow the listing
    assert [j["id"] for j in cli_main("jobs", "--queue", "a").json()["jobs"]] == [ids[0], ids[2]]
    assert cli_main("jobs", "--state", "running,succeeded").json()["jobs"] == []
    assert cli_main("jobs", "--state", "queued", "--state", "blocked").json()["jobs"] != []


def test_show_runs_factories_as_tables(cli_main: Cli) -> None:
    # Given a job claimed by a factory that sent a heartbeat
    cli_main("heartbeat", "--factory", "f-2", "--capabilities", "gpu", "--load", "0.5", tenant=None)
    job_id = cli_main("submit", "--capabilities", "gpu").json()["job"]["id"]
    claimed = cli_main("claim", "--factory", "f-2", "--format", "table")
    assert claimed.out.splitlines()[-1] == "claimed 1 job(s)"

    # When the job, its runs and the factories are shown as tables, with the global
    # options given after the subcommand
    show = cli_main("show", job_id, "--format", "table").out
    runs = cli_main("runs", job_id, "--format", "table").out
    factories = cli_main("factories", "--format", "table", tenant=None).out

    # Then each is a compact aligned table
    assert show.splitlines()[0].split() == ["FIELD", "VALUE"]
    assert {tuple(line.split()) for line in show.splitlines()} >= {
        ("id", job_id),
        ("state", "assigned"),
        ("lease.factory_id", "f-2"),
        ("lease.epoch", "1"),
    }
    assert runs.splitlines()[0].split()[:3] == ["ATTEMPT", "EPOCH", "FACTORY_ID"]
    assert runs.splitlines()[1].split()[:3] == ["1", "1", "f-2"]
    assert factories.splitlines()[1].split()[:5] == ["f-2", "ok", "no", "gpu", "-"]


def test_profiles_and_projection_rebuild(cli_main: Cli) -> None:
    # Given a registered profile
    register = ("profiles", "register", "--name", "coder", "--version", "1")
    assert cli_main(*register, "--content", '{"model": "m1"}').json()["created"] is True

    # When it is registered again, the same and then different
    same = cli_main(*register, "--content", '{"model": "m1"}').json()
    different = cli_main(*register, "--content", '{"model": "m2"}').error()

    # Then the same content is a no-op and different content is refused
    assert same == {"name": "coder", "version": 1, "created": False}
    assert different["error"] == "profile-conflict"

    # When the projections are rebuilt from the log
    rebuilt = cli_main("projections", "rebuild", tenant=None).json()

    # Then every view is rebuilt and still verifies
    assert rebuilt["rows"]["fleet_profiles"] == 1
    verify = cli_main("projections", "verify", "--format", "table", tenant=None)
    assert verify.code == 0
    assert verify.out.splitlines()[-1].startswith("views match the log")


def test_refusals_are_json_errors_with_exit_2(cli_main: Cli) -> None:
    # Given a job
    job_id = cli_main("submit").json()["job"]["id"]

    # When commands are given bad JSON, no tenant, or unknown things
    bad_spec = cli_main("submit", "--spec", '{"queue": ').error()
    bad_payload = cli_main("submit", "--payload", "[1, 2]").error()
    bad_data = cli_main("checkpoint", job_id, "--epoch", "1", "--data", "{nope}").error()
    no_tenant = cli_main("submit", tenant=None).error()
    no_scope = cli_main("jobs", tenant=None).error()
    unknown = cli_main("show", str(uuid.uuid4())).error()
    bad_spec_value = cli_main("submit", "--priority", "urgent").error()
    bad_version = cli_main("replay", job_id, "--version", "9").error()
    not_leased = cli_main("start", job_id, "--epoch", "1").error()

    # Then each is refused with a code and a message that says what to do
    assert (bad_spec["error"], bad_spec["flag"]) == ("invalid-json", "--spec")
    assert bad_spec["message"].startswith("--spec is not valid JSON: Expecting value (line 1, column 11)")
    assert bad_payload == {
        "error": "invalid-json",
        "message": "--payload must be a JSON object, not list",
        "flag": "--payload",
        "expected": "object",
    }
    assert (bad_data["error"], bad_data["flag"]) == ("invalid-json", "--data")
    assert no_tenant["error"] == "tenant-required"
    assert no_tenant["message"] == "submit needs a tenant: pass --tenant (or use a tenant-bound token)"
    assert no_scope["error"] == "tenant-required"
    assert "--tenant" in no_scope["message"] and "--all-tenants" in no_scope["message"]
    assert unknown["error"] == "not-found"
    assert bad_spec_value["error"] == "invalid-request"
    assert bad_spec_value["errors"][0]["loc"] == "priority"
    assert bad_version["error"] == "invalid-request"
    assert "has versions 1-1" in bad_version["message"]
    assert (not_leased["error"], not_leased["state"]) == ("stale-epoch", "queued")


def test_usage_errors_exit_2_without_a_traceback(sqlite_main: Cli) -> None:
    # When arguments do not parse
    bad_id = sqlite_main("show", "not-a-uuid")
    missing_epoch = sqlite_main("succeed", str(uuid.uuid4()))
    both_scopes = sqlite_main("jobs", "--all-tenants")  # --tenant acme comes from the runner
    bad_tenant = sqlite_main("jobs", tenant="Not A Tenant")
    both_stores = sqlite_main("--database-url", "postgresql://x/y", "jobs")

    # Then argparse explains the usage problem, and the CLI's own checks answer in JSON
    assert bad_id.code == 2 and "'not-a-uuid' is not a job id" in bad_id.err
    assert missing_epoch.code == 2 and "--epoch" in missing_epoch.err
    assert both_scopes.error()["error"] == "conflicting-options"
    assert bad_tenant.error()["error"] == "invalid-request"
    assert both_stores.error()["error"] == "conflicting-options"
    for ran in (bad_id, missing_epoch):
        assert "Traceback" not in ran.err and ran.out == ""


def test_unreachable_store_and_internal_errors(sqlite_main: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # When the store cannot be reached
    down = Cli(
        ["--database-url", "postgresql://postgres@127.0.0.1:1/none"], sqlite_main.cwd, True, monkeypatch
    )
    unreachable = down("jobs").error()

    # Then the error names the store and the options to check
    assert unreachable["error"] == "unavailable"
    assert "--database-url" in unreachable["message"]

    # When a handler fails unexpectedly (a bug)
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(read_commands, "run_show", broken)
    crashed = sqlite_main("show", str(uuid.uuid4()))

    # Then the boundary reports it as an internal error with exit 3, still as JSON
    assert crashed.code == 3
    assert json.loads(crashed.err)["error"] == "internal-error"
    assert "RuntimeError: boom" in json.loads(crashed.err)["message"]


def test_environment_selects_store_and_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given only environment variables: a data dir, a tenant, and a DATABASE_URL that
    # an explicit --data-dir must override
    env_only = Cli([], tmp_path, True, monkeypatch, clear_env=())
    for name in ("DATABASE_URL", "FLEETLOG_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEETLOG_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("FLEETLOG_TENANT", "envco")

    # When a job is submitted with no options at all
    job = env_only("submit", tenant=None).json()["job"]

    # Then it went to the environment's tenant and store
    assert job["tenant"] == "envco"
    assert (tmp_path / "env-data" / "fleetlog.db").exists()

    # And an explicit --data-dir wins over DATABASE_URL
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    explicit = env_only("--data-dir", str(tmp_path / "env-data"), "jobs", tenant=None).json()
    assert [j["id"] for j in explicit["jobs"]] == [job["id"]]

    # And --all-tenants wins over FLEETLOG_TENANT
    everyone = env_only("--data-dir", str(tmp_path / "env-data"), "--all-tenants", "jobs", tenant=None)
    assert len(everyone.json()["jobs"]) == 1


def test_help_exits_0(sqlite_main: Cli) -> None:
    # When help is asked for
    ran = sqlite_main("--help", tenant=None)

    # Then it lists every command family
    assert ran.code == 0
    for command in ("submit", "claim", "heartbeat", "jobs", "history", "projections", "profiles", "reap"):
        assert command in ran.out
