"""``fleetlog mcp`` end to end: a real stdio session against a real store on each backend.

Each test starts the console script as an MCP client would (about a second per session);
the client validates every successful result against the tool's output schema.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from mcp import ClientSession, MCPError

from coordinator.identity import Identity, Role
from tests.mcp.harness import Store, error, ok

TOOLS = {"submit", "get", "list", "history", "cancel"}


def test_the_five_tools_are_listed_with_their_schemas(store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        # When
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}

        # Then
        assert set(listed) == TOOLS
        for tool in listed.values():
            assert tool.description and tool.input_schema["type"] == "object", tool.name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
        submit = listed["submit"].input_schema["properties"]
        assert {"queue", "kind", "priority", "payload", "idempotency_key", "deps", "run_at"} <= set(submit)
        assert listed["submit"].input_schema["additionalProperties"] is False
        assert listed["get"].input_schema["required"] == ["job_id"]
        assert listed["get"].annotations is not None and listed["get"].annotations.read_only_hint
        assert listed["cancel"].annotations is not None and listed["cancel"].annotations.destructive_hint

    store.run(store.token("acme"), scenario)


def test_submit_get_list_history_cancel(store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        # Given a submitted job
        submitted = ok(
            await session.call_tool(
                "submit",
                {"queue": "render", "priority": "high", "payload": {"doc": 7}, "capabilities": ["gpu"]},
            )
        )
        job = submitted["job"]
        assert submitted["outcome"] == "created"
        assert (job["tenant"], job["state"], job["queue"], job["priority"]) == (
            "acme",
            "queued",
            "render",
            10,
        )

        # When it is read, listed and cancelled
        got = ok(await session.call_tool("get", {"job_id": job["id"]}))
        listed = ok(await session.call_tool("list", {"states": ["queued"], "queue": "render"}))
        cancelled = ok(await session.call_tool("cancel", {"job_id": job["id"], "reason": "not needed"}))
        history = ok(await session.call_tool("history", {"job_id": job["id"]}))

        # Then every tool saw the same job, and its history records both events
        assert got == job
        assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_cursor"] is None
        assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "not needed")
        assert [e["type"] for e in history["events"]] == ["JobSubmitted", "JobCancelled"]
        assert history["events"][0]["data"]["spec"]["payload"] == {"doc": 7}
        assert ok(await session.call_tool("list", {"states": ["queued"]}))["jobs"] == []

    store.run(store.token("acme"), scenario)


def test_list_pages_with_a_cursor(sqlite_store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        # Given three jobs
        ids = [ok(await session.call_tool("submit", {"payload": {"n": n}}))["job"]["id"] for n in range(3)]

        # When they are listed two at a time
        first = ok(await session.call_tool("list", {"limit": 2}))
        second = ok(await session.call_tool("list", {"limit": 2, "cursor": first["next_cursor"]}))

        # Then the pages cover them in order
        assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids
        assert second["next_cursor"] is None

    sqlite_store.run(sqlite_store.token("acme"), scenario)


def test_an_identical_resubmit_returns_the_same_job(store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        spec = {"idempotency_key": "order-42", "payload": {"order": 42}}

        # When the same spec is submitted twice, then once with other content
        first = ok(await session.call_tool("submit", spec))
        again = ok(await session.call_tool("submit", spec))
        changed = ok(await session.call_tool("submit", {**spec, "payload": {"order": 43}}))

        # Then the second answers with the first job, and the third replaces it
        assert (first["outcome"], again["outcome"]) == ("created", "existing")
        assert again["job"]["id"] == first["job"]["id"]
        assert changed["outcome"] == "superseded"
        assert changed["superseded_job_id"] == first["job"]["id"]
        listed = ok(await session.call_tool("list", {"idempotency_key": "order-42", "states": ["queued"]}))
        assert [j["id"] for j in listed["jobs"]] == [changed["job"]["id"]]

    store.run(store.token("acme"), scenario)


def test_another_tenants_job_is_not_found(store: Store) -> None:
    # Given a job of tenant globex, submitted directly through the Fleet
    with store.fleet() as fleet:
        theirs = str(fleet.submit(Identity.of("svc", "globex"), {"payload": {"secret": 1}}).job.id)

    async def scenario(session: ClientSession) -> None:
        # When acme's session reaches for it
        refusals = [
            error(await session.call_tool(tool, {"job_id": theirs})) for tool in ("get", "history", "cancel")
        ]
        listed = ok(await session.call_tool("list", {}))

        # Then it does not exist for acme, exactly as a missing job would not
        for refusal in refusals:
            assert refusal["code"] == "not-found"
            assert refusal["message"] == f"job {theirs} not found"
        assert listed["jobs"] == []

    store.run(store.token("acme"), scenario)
    with store.fleet() as fleet:
        assert fleet.get(Identity.of("svc", "globex"), UUID(theirs)).state == "queued"


def test_a_reader_token_cannot_submit_or_cancel_but_can_read(store: Store) -> None:
    # Given a job of acme
    with store.fleet() as fleet:
        job_id = str(fleet.submit(Identity.of("svc", "acme"), {"payload": {}}).job.id)

    async def scenario(session: ClientSession) -> None:
        # When a reader-only session tries everything
        submit = error(await session.call_tool("submit", {"payload": {}}))
        cancel = error(await session.call_tool("cancel", {"job_id": job_id}))
        got = ok(await session.call_tool("get", {"job_id": job_id}))
        history = ok(await session.call_tool("history", {"job_id": job_id}))

        # Then the Fleet refused the writes by role, and allowed the reads
        assert submit == {
            "code": "forbidden",
            "message": "submit needs the 'submitter' role",
            "action": "submit",
            "needs": "submitter",
            "retryable": False,
        }
        assert cancel["code"] == "forbidden" and cancel["needs"] == "submitter"
        assert got["id"] == job_id and got["state"] == "queued"
        assert len(history["events"]) == 1

    store.run(store.token("acme", Role.READER), scenario)


INVALID_SPECS: list[tuple[dict[str, Any], str, str]] = [
    ({"priority": 500}, "priority", "invalid job: priority: Input should be less than or equal to 100"),
    (
        {"priority": "urgent"},
        "priority",
        "invalid job: priority: Value error, priority must be one of critical, high, medium, low "
        "or an integer 0-100",
    ),
    ({"payload": {}, "colour": "red"}, "colour", "invalid job: colour: Extra inputs are not permitted"),
    ({"queue": "Bad Queue"}, "queue", "invalid job: queue: String should match pattern"),
    ({"deps": ["nope"]}, "(body)", "invalid job: (body): Value error, badly formed hexadecimal UUID string"),
]


def test_invalid_submit_input_is_a_tool_error_naming_the_field(sqlite_store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        for arguments, loc, message in INVALID_SPECS:
            # When
            refusal = error(await session.call_tool("submit", arguments))

            # Then
            assert refusal["code"] == "invalid-request"
            assert refusal["message"].startswith(message), refusal["message"]
            assert [e["loc"] for e in refusal["errors"]] == [loc]
        # And nothing was submitted, and the server is still serving
        assert ok(await session.call_tool("list", {}))["jobs"] == []

    sqlite_store.run(sqlite_store.token("acme"), scenario)


def test_invalid_arguments_of_the_other_tools_name_the_field(sqlite_store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        # When
        bad_id = error(await session.call_tool("get", {"job_id": "not-a-uuid"}))
        missing = error(await session.call_tool("history", {}))
        bad_state = error(await session.call_tool("list", {"states": ["done"]}))
        too_many = error(await session.call_tool("list", {"limit": 501}))
        extra = error(await session.call_tool("cancel", {"job_id": str(uuid4()), "why": "x"}))

        # Then
        assert bad_id["message"].startswith("invalid get arguments: job_id: Input should be a valid UUID")
        assert missing["message"] == "invalid history arguments: job_id: Field required"
        assert bad_state["message"].startswith("invalid list arguments: states.0: Input should be 'blocked'")
        assert (
            too_many["message"] == "invalid list arguments: limit: Input should be less than or equal to 500"
        )
        assert extra["message"] == "invalid cancel arguments: why: Extra inputs are not permitted"
        assert {r["code"] for r in (bad_id, missing, bad_state, too_many, extra)} == {"invalid-request"}

    sqlite_store.run(sqlite_store.token("acme"), scenario)


def test_an_unknown_tool_is_a_protocol_error(sqlite_store: Store) -> None:
    async def scenario(session: ClientSession) -> None:
        # When / Then
        with pytest.raises(MCPError, match="unknown tool 'delete'"):
            await session.call_tool("delete", {})

    sqlite_store.run(sqlite_store.token("acme"), scenario)
