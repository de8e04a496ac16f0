"""Every route and status over a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from coordinator.identity import Role
from domain.limits import MAX_COUNT
from tests.http.live import LiveServer

W = Role.WORKER


def submit(http: httpx.Client, **spec: Any) -> dict[str, Any]:
    response = http.post("/v1/jobs", json={"queue": "q", **spec})
    assert response.status_code == 201, response.text
    return response.json()["job"]


def claim(http: httpx.Client, n: int = 1, **body: Any) -> list[dict[str, Any]]:
    response = http.post("/v1/claim", json={"factory_id": "f1", "max_jobs": n, **body})
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


# ------------------------------------------------------------------ submit


def test_submit_statuses_and_idempotency(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        first = http.post(
            "/v1/jobs", json={"queue": "q", "payload": {"n": 1}}, headers={"Idempotency-Key": "k1"}
        )
        assert first.status_code == 201
        assert first.json()["outcome"] == "created"
        job = first.json()["job"]
        assert job["idempotency_key"] == "k1" and job["tenant"] == "acme" and job["state"] == "queued"

        again = http.post("/v1/jobs", json={"queue": "q", "payload": {"n": 1}, "idempotency_key": "k1"})
        assert again.status_code == 200
        assert again.json()["outcome"] == "existing"
        assert again.json()["job"]["id"] == job["id"]

        changed = http.post(
            "/v1/jobs", json={"queue": "q", "payload": {"n": 2}}, headers={"Idempotency-Key": "k1"}
        )
        assert changed.status_code == 200
        assert changed.json()["outcome"] == "superseded"
        assert changed.json()["superseded_job_id"] == job["id"]
        new_id = changed.json()["job"]["id"]

        (leased,) = claim(http)
        assert leased["job"]["id"] == new_id
        conflict = http.post(
            "/v1/jobs", json={"queue": "q", "payload": {"n": 3}}, headers={"Idempotency-Key": "k1"}
        )
        problem(conflict, 409, "idempotency-conflict")

        mismatch = http.post(
            "/v1/jobs", json={"queue": "q", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
        )
        problem(mismatch, 422, "invalid-request")


def test_submit_validation_is_precise(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        body = problem(
            http.post("/v1/jobs", json={"queue": "q", "priority": -1, "colour": "red", "lease_seconds": -5}),
            422,
            "invalid-request",
        )
        locs = {e["loc"] for e in body["errors"]}
        assert {"body.priority", "body.colour", "body.lease_seconds"} <= locs
        many = http.post("/v1/jobs", json={"queue": "q", "capabilities": [f"c{i}" for i in range(10_000)]})
        assert "body.capabilities" in {e["loc"] for e in problem(many, 422, "invalid-request")["errors"]}
        deep: Any = "x"
        for _ in range(60):
            deep = {"a": deep}
        problem(http.post("/v1/jobs", json={"queue": "q", "payload": deep}), 422, "invalid-request")
        problem(http.post("/v1/jobs", json=["not", "an", "object"]), 422, "invalid-request")
        problem(
            http.post("/v1/jobs", content=b'{"queue": ', headers={"content-type": "application/json"}),
            400,
            "malformed-json",
        )
        problem(
            http.post("/v1/jobs", content=b'{"queue": NaN}', headers={"content-type": "application/json"}),
            400,
            "malformed-json",
        )
        problem(
            http.post("/v1/jobs", content=b"\xff\xfe", headers={"content-type": "application/json"}),
            400,
            "malformed-json",
        )
        problem(
            http.post("/v1/jobs", content=b"queue=q", headers={"content-type": "text/plain"}),
            415,
            "unsupported-media-type",
        )
        problem(http.post("/v1/jobs"), 422, "invalid-request")
        assert http.get("/v1/jobs").json()["jobs"] == [], "no refused input created a job"


def test_integers_past_what_the_stores_hold_are_422_not_500(live_server: LiveServer) -> None:
    # The schemathesis run drew a profile version of 16933169232915573243904: SQLite raised
    # OverflowError looking it up, a 500. Every count is bounded where it is declared.
    huge = 16933169232915573243904
    with live_server.as_tenant("acme") as http:
        for body, loc in [
            ({"queue": "q", "profile": {"name": "p", "version": huge}}, "body.profile.version"),
            ({"queue": "q", "profile": {"name": "p", "version": 2**31}}, "body.profile.version"),
            ({"queue": "q", "budget": {"tokens": 2**53}}, "body.budget.tokens"),
            ({"queue": "q", "budget": "lots"}, "body.budget"),  # said plainly: not an object
        ]:
            errors = problem(http.post("/v1/jobs", json=body), 422, "invalid-request")["errors"]
            assert loc in {e["loc"] for e in errors}
            assert not any("anyOf" in e["msg"] for e in errors), errors  # the field's own rule
        batch = http.post(
            "/v1/jobs/batch", json={"jobs": [{"queue": "q", "profile": {"name": "p", "version": huge}}]}
        )
        problem(batch, 422, "invalid-request")
        assert http.get("/v1/jobs").json()["jobs"] == [], "no refused input created a job"
        # A usage report a worker cannot have counted is refused, and the run stays open
        job = submit(http)
        (lease,) = claim(http)
        report = {"epoch": lease["epoch"], "state": "succeeded", "insights": {"tokens_in": 2**64}}
        errors = problem(http.patch(f"/v1/jobs/{job['id']}", json=report), 422, "invalid-request")["errors"]
        assert "body.insights.tokens_in" in {e["loc"] for e in errors}
        assert http.get(f"/v1/jobs/{job['id']}").json()["state"] in ("assigned", "running")
        assert (
            http.get("/openapi.json").json()["components"]["schemas"]["RunInsights"]["properties"][
                "tokens_in"
            ]["maximum"]
            == MAX_COUNT
        )


def test_unknown_dependencies_and_cycles_are_422(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        missing = str(uuid.uuid4())
        body = problem(
            http.post("/v1/jobs", json={"queue": "q", "deps": [missing]}), 422, "unknown-dependency"
        )
        assert missing in body["ids"]
        batch = http.post(
            "/v1/jobs/batch",
            json={"jobs": [{"queue": "q", "idempotency_key": "a"}, {"queue": "q", "deps": [missing]}]},
        )
        assert batch.status_code == 200
        results = batch.json()["results"]
        assert [r["index"] for r in results] == [0, 1]
        assert results[1]["ok"] is False and results[1]["error"]["code"] == "unknown-dependency"


def test_bodies_over_the_limit_are_413(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        big = {"queue": "q", "payload": {"blob": "x" * (1024 * 1024)}}
        body = problem(http.post("/v1/jobs", json=big), 413, "payload-too-large")
        assert body["limit_bytes"] == 1024 * 1024

        def chunks() -> Any:
            yield b'{"queue": "q", "payload": {"blob": "'
            for _ in range(300):
                yield b"y" * 4096
            yield b'"}}'

        streamed = http.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
        problem(streamed, 413, "payload-too-large")
        assert http.get("/v1/jobs").json()["jobs"] == []


def test_batch_submits_in_order_and_refuses_more_than_1000(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        response = http.post(
            "/v1/jobs/batch", json={"jobs": [{"queue": "q", "payload": {"i": i}} for i in range(50)]}
        )
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["index"] for r in results] == list(range(50))
        assert all(r["ok"] and r["outcome"] == "created" for r in results)
        too_many = http.post("/v1/jobs/batch", json={"jobs": [{"queue": "q"}] * 1001})
        problem(too_many, 422, "invalid-request")
        problem(http.post("/v1/jobs/batch", json={"jobs": []}), 422, "invalid-request")


# ------------------------------------------------------------------- reads


def test_list_is_keyset_paginated_and_filtered(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        ids = [submit(http, queue="a" if i % 2 else "b")["id"] for i in range(7)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/jobs", params=params).json()
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        only_a = http.get("/v1/jobs", params={"queue": "a"}).json()["jobs"]
        assert {j["queue"] for j in only_a} == {"a"} and len(only_a) == 3
        (leased,) = claim(http, queues=["b"])
        running = http.get("/v1/jobs", params={"state": "assigned,running"}).json()["jobs"]
        assert [j["id"] for j in running] == [leased["job"]["id"]]
        repeated = http.get("/v1/jobs", params=[("state", "assigned"), ("state", "queued")]).json()["jobs"]
        assert len(repeated) == 7
        problem(http.get("/v1/jobs", params={"state": "nonsense"}), 422, "invalid-request")
        problem(http.get("/v1/jobs", params={"limit": 0}), 422, "invalid-request")
        problem(http.get("/v1/jobs", params={"colour": "red"}), 422, "invalid-request")
        # A single-valued parameter given twice is refused, not read as one of the two
        twice = http.get("/v1/jobs", params=[("queue", "a"), ("queue", "b")])
        problem(twice, 422, "invalid-request")
        assert "given 2 times" in twice.json()["detail"]


def test_get_job_shows_lease_attempts_checkpoint_and_phase(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http, phases=["fetch", "write"])
        (leased,) = claim(http)
        epoch = leased["epoch"]
        patched = http.patch(
            f"/v1/jobs/{job['id']}",
            json={"epoch": epoch, "state": "running", "phase": "fetch", "checkpoint": {"row": 10}},
        )
        assert patched.status_code == 200, patched.text
        view = http.get(f"/v1/jobs/{job['id']}").json()
        assert view["state"] == "running" and view["phase"] == "fetch" and view["checkpoint"] == {"row": 10}
        assert view["attempts"] == 1 and view["epoch"] == epoch
        assert view["lease"]["factory_id"] == "f1" and view["lease"]["epoch"] == epoch
        assert view["lease"]["expires_at"] == leased["lease_expires_at"]
        for key in ("result", "error", "created_at", "updated_at"):
            assert key in view
        problem(http.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "not-found")
        problem(http.get("/v1/jobs/not-a-uuid"), 404, "route-not-found")


def test_events_runs_and_state_at_a_version(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http)
        (leased,) = claim(http, start=True)
        done = http.patch(
            f"/v1/jobs/{job['id']}",
            json={
                "epoch": leased["epoch"],
                "state": "succeeded",
                "result": {"ok": True},
                "insights": {"tokens_in": 5},
            },
        )
        assert done.json()["state"] == "succeeded" and done.json()["result"] == {"ok": True}
        events = http.get(f"/v1/jobs/{job['id']}/events").json()
        assert [e["version"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "JobSubmitted" and events[-1]["type"] == "JobSucceeded"
        assert all({"version", "type", "at", "data"} <= e.keys() for e in events)
        first = http.get(f"/v1/jobs/{job['id']}/state", params={"version": 1}).json()
        assert first["state"] == "queued" and first["version"] == 1
        problem(http.get(f"/v1/jobs/{job['id']}/state", params={"version": 99}), 422, "invalid-request")
        problem(http.get(f"/v1/jobs/{job['id']}/state"), 422, "invalid-request")
        (run,) = http.get(f"/v1/jobs/{job['id']}/runs").json()
        assert (
            run["factory_id"] == "f1" and run["outcome"] == "succeeded" and run["insights"]["tokens_in"] == 5
        )
        assert run["started_at"] and run["ended_at"]


# ------------------------------------------------------------------ workers


def test_patch_is_fenced_and_transitions_are_checked(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http, retry={"max_attempts": 2, "base_seconds": 0.01, "jitter": 0})
        (first,) = claim(http, lease_seconds=60)
        path = f"/v1/jobs/{job['id']}"
        # straight from assigned to failed (retryable): back to the queue
        failed = http.patch(
            path,
            json={
                "epoch": first["epoch"],
                "state": "failed",
                "error": {"kind": "io", "message": "boom", "retryable": True},
            },
        )
        assert failed.status_code == 200, failed.text
        stale = http.patch(path, json={"epoch": first["epoch"], "state": "succeeded"})
        body = problem(stale, 409, "stale-epoch")
        assert body["presented_epoch"] == first["epoch"]
        assert body["current_epoch"] >= first["epoch"]
        problem(http.patch(path, json={"epoch": first["epoch"]}), 422, "invalid-request")
        problem(http.patch(path, json={"epoch": 1, "state": "failed"}), 422, "invalid-request")
        problem(http.patch(path, json={"epoch": 1, "state": "exploded"}), 422, "invalid-request")
        problem(http.patch(f"/v1/jobs/{uuid.uuid4()}", json={"epoch": 1, "phase": "x"}), 404, "not-found")


def test_illegal_transition_is_409(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http)
        (leased,) = claim(http)
        path = f"/v1/jobs/{job['id']}"
        assert http.patch(path, json={"epoch": leased["epoch"], "state": "succeeded"}).status_code == 200
        problem(http.post(f"{path}/cancel", json={}), 409, "illegal-transition")


def test_renew_release_and_cancel_seen_on_renew(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http)
        path = f"/v1/jobs/{job['id']}"
        (leased,) = claim(http, lease_seconds=30)
        renewed = http.post(f"{path}/lease/renew", json={"epoch": leased["epoch"], "lease_seconds": 120})
        assert renewed.status_code == 200
        assert renewed.json()["cancel_requested"] is False
        assert renewed.json()["lease_expires_at"] > leased["lease_expires_at"]
        problem(http.post(f"{path}/lease/renew", json={"epoch": leased["epoch"] + 5}), 409, "stale-epoch")
        problem(
            http.post(f"{path}/lease/renew", json={"epoch": leased["epoch"], "lease_seconds": -1}),
            422,
            "invalid-request",
        )
        released = http.post(f"{path}/lease/release", json={"epoch": leased["epoch"], "reason": "draining"})
        assert released.status_code == 200 and released.json()["state"] == "queued"
        problem(http.post(f"{path}/lease/release", json={"epoch": leased["epoch"]}), 409, "stale-epoch")

        (again,) = claim(http)
        cancelled = http.post(f"{path}/cancel", json={"reason": "not needed"})
        assert cancelled.status_code == 200
        seen = http.post(f"{path}/lease/renew", json={"epoch": again["epoch"]})
        assert seen.json()["cancel_requested"] is True

        other = submit(http)
        assert http.post(f"/v1/jobs/{other['id']}/cancel").json()["state"] == "cancelled"


def test_requeue_from_dead_letter(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        job = submit(http, retry={"max_attempts": 1})
        path = f"/v1/jobs/{job['id']}"
        problem(http.post(f"{path}/requeue"), 409, "illegal-transition")
        (leased,) = claim(http)
        dead = http.patch(
            path,
            json={
                "epoch": leased["epoch"],
                "state": "failed",
                "error": {"kind": "bad", "message": "no", "retryable": False},
            },
        )
        assert dead.json()["state"] == "dead_letter"
        assert http.post(f"{path}/requeue").json()["state"] == "queued"


def test_completions_batch_reports_each_item(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        for _ in range(3):
            submit(http)
        leased = claim(http, 3)
        items = [
            {"job_id": c["job"]["id"], "epoch": c["epoch"], "outcome": "succeeded", "result": i}
            for i, c in enumerate(leased)
        ]
        items[2]["epoch"] += 7
        results = http.post("/v1/completions", json={"completions": items}).json()["results"]
        assert [r["ok"] for r in results] == [True, True, False]
        assert results[2]["error"]["code"] == "stale-epoch"


def test_heartbeat_and_factories(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        beat = http.post(
            "/v1/factories/heartbeat",
            json={
                "factory_id": "gpu-1",
                "capabilities": ["gpu"],
                "health": "ok",
                "load": 0.5,
                "seat_limit": 4,
            },
        )
        assert beat.status_code == 200, beat.text
        assert beat.json()["factory_id"] == "gpu-1" and beat.json()["stale"] is False
        listed = http.get("/v1/factories").json()
        assert [f["factory_id"] for f in listed] == ["gpu-1"]
        problem(
            http.post("/v1/factories/heartbeat", json={"factory_id": "gpu-1", "load": -1}),
            422,
            "invalid-request",
        )
        problem(http.post("/v1/factories/heartbeat", json={"factory_id": "BAD ID"}), 422, "invalid-request")


def test_claim_validation(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", W) as http:
        for body in (
            {"factory_id": "f1", "max_jobs": 0},
            {"factory_id": "f1", "max_jobs": 101},
            {"factory_id": "f1", "wait_seconds": 31},
            {"factory_id": "f1", "lease_seconds": -1},
            {"factory_id": "f1", "capabilities": [f"c{i}" for i in range(10_000)]},
            {"max_jobs": 1},
        ):
            problem(http.post("/v1/claim", json=body), 422, "invalid-request")


def test_unknown_routes_and_methods_are_problems(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        problem(http.get("/v1/nothing"), 404, "route-not-found")
        problem(http.delete("/v1/jobs"), 405, "method-not-allowed")


# --------------------------------------------------------------- isolation


def test_tenants_cannot_see_each_other(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as a, live_server.as_tenant("globex") as b:
        theirs = submit(b, idempotency_key="shared")
        path = f"/v1/jobs/{theirs['id']}"
        missing = f"/v1/jobs/{uuid.uuid4()}"
        for method, suffix, body in [
            ("GET", "", None),
            ("GET", "/events", None),
            ("GET", "/runs", None),
            ("POST", "/cancel", {}),
            ("POST", "/lease/renew", {"epoch": 1}),
            ("PATCH", "", {"epoch": 1, "phase": "x"}),
        ]:
            mine = a.request(method, path + suffix, json=body)
            absent = a.request(method, missing + suffix, json=body)
            assert mine.status_code == absent.status_code == 404
            assert mine.json()["detail"].replace(theirs["id"], "ID") == absent.json()["detail"].replace(
                missing.rsplit("/", 1)[1], "ID"
            )
        assert a.get("/v1/jobs").json()["jobs"] == []
        assert claim(a) == []
        # the same idempotency key in another tenant is a different job
        mine = a.post("/v1/jobs", json={"queue": "q", "idempotency_key": "shared"})
        assert mine.status_code == 201 and mine.json()["job"]["id"] != theirs["id"]
        assert b.get(path).json()["state"] == "queued"


def test_fleet_wide_worker_claims_across_tenants_fairly(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as a, live_server.as_tenant("globex") as b:
        for _ in range(6):
            submit(a)
        for _ in range(2):
            submit(b)
    with live_server.as_tenant(None, W) as fleet_worker:
        got = claim(fleet_worker, 4)
    tenants = [c["job"]["tenant"] for c in got]
    assert sorted(tenants) == ["acme", "acme", "globex", "globex"]


def test_fleet_wide_token_cannot_submit_without_a_tenant(live_server: LiveServer) -> None:
    with live_server.as_tenant(None) as http:
        problem(http.post("/v1/jobs", json={"queue": "q"}), 403, "tenant-required")


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_docs_are_served_without_a_token(live_server: LiveServer, path: str) -> None:
    with live_server.client(None) as http:
        response = http.get(path)
    assert response.status_code == 200
    if path == "/docs":
        assert (
            "<script" in response.text and "http://" not in response.text and "https://" not in response.text
        )
    else:
        doc = response.json()
        assert doc["openapi"] == "3.1.0"
        assert "/v1/jobs/{job_id}" in doc["paths"]
