"""The input models: what is accepted, how it is normalised, and how refusals read."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import ErrorDetails

from domain.factory import FactoryReport
from domain.job.spec import (
    MAX_CAPABILITIES,
    MAX_PAYLOAD_DEPTH,
    Artifact,
    Budget,
    DependencyMode,
    JobSpec,
    ProfileRef,
    RunInsights,
)
from domain.limits import MAX_COUNT, MAX_PROFILE_VERSION
from domain.profile import ProfileSpec
from tests.unit.job_factories import make_spec


def errors_of(model: type[pydantic.BaseModel], data: Any) -> list[ErrorDetails]:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    return caught.value.errors()


def only_error(model: type[pydantic.BaseModel], data: Any) -> ErrorDetails:
    errors = errors_of(model, data)
    assert len(errors) == 1, errors
    return errors[0]


def nested(depth: int) -> dict[str, Any]:
    """A payload ``depth`` objects deep: ``depth`` dicts around a scalar."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# ------------------------------------------------------------------ valid input


def test_defaults_are_a_valid_spec() -> None:
    # Given nothing at all / When parsed
    spec = JobSpec.model_validate({})
    # Then every default is filled in
    assert (spec.queue, spec.kind, spec.priority, spec.lease_seconds) == ("default", "leaf", 20, 60.0)
    assert spec.deps == () and spec.capabilities == () and spec.payload == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("critical", 0),
        ("high", 10),
        ("HIGH", 10),
        ("medium", 20),
        ("low", 30),
        (0, 0),
        (100, 100),
        ("42", 42),
    ],
)
def test_priority_accepts_names_and_integers(given: Any, expected: int) -> None:
    assert make_spec(priority=given).priority == expected


def test_capabilities_are_sorted_and_deduplicated() -> None:
    # Given capabilities out of order, with a repeat / When parsed
    spec = make_spec(capabilities=["gpu", "cpu", "gpu", "arm64"])
    # Then they are sorted and unique
    assert spec.capabilities == ("arm64", "cpu", "gpu")


def test_bare_dependency_ids_take_deps_mode() -> None:
    # Given two bare ids and deps_mode soft
    a, b = uuid4(), uuid4()
    # When parsed
    spec = make_spec(deps=[str(a), b], deps_mode="soft")
    # Then both become soft Dependency records (a set of edges: ordered by id)
    assert [(d.job_id, d.mode, d.milestone) for d in spec.deps] == sorted(
        [(a, DependencyMode.SOFT, None), (b, DependencyMode.SOFT, None)], key=lambda d: d[0]
    )


def test_dependency_objects_keep_their_own_mode_and_milestone() -> None:
    # Given a soft object with a milestone, an object without mode, and hard as deps_mode
    a, b = uuid4(), uuid4()
    spec = make_spec(deps=[{"job_id": str(a), "mode": "soft", "milestone": "build"}, {"job_id": str(b)}])
    # Then the explicit mode wins and the missing one defaults to hard
    assert {d.job_id: (d.mode, d.milestone) for d in spec.deps} == {
        a: (DependencyMode.SOFT, "build"),
        b: (DependencyMode.HARD, None),
    }


def test_payload_at_the_depth_limit_is_accepted() -> None:
    assert make_spec(payload=nested(MAX_PAYLOAD_DEPTH)).payload == nested(MAX_PAYLOAD_DEPTH)


def test_aware_run_at_is_accepted_and_kept_in_utc() -> None:
    run_at = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    parsed = make_spec(run_at=run_at.isoformat()).run_at
    assert parsed == run_at and parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("run_at", ["0001-01-01T01:02:00+04:00", "9999-12-31T23:00:00-02:00"])
def test_a_run_at_outside_utc_s_range_is_refused_not_crashed(run_at: str) -> None:
    # Found by the API fuzzer: the conversion to UTC overflowed into a 500.
    with pytest.raises(pydantic.ValidationError, match="outside the range"):
        make_spec(run_at=run_at)


def test_equal_intent_in_other_words_hashes_equally() -> None:
    a, b = uuid4(), uuid4()
    run_at = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    one = make_spec(deps=[str(a), str(b)], run_at=run_at.isoformat())
    other = make_spec(deps=[str(b), str(a)], run_at=run_at.astimezone(UTC).isoformat())
    assert one.content_hash() == other.content_hash()


# ------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("overrides", "loc", "error_type"),
    [
        ({"kind": "batch"}, ("kind",), "enum"),
        ({"retry": {"backoff": "fibonacci"}}, ("retry", "backoff"), "enum"),
        ({"lease_seconds": 0}, ("lease_seconds",), "greater_than"),
        ({"lease_seconds": -5}, ("lease_seconds",), "greater_than"),
        ({"lease_seconds": 86_401}, ("lease_seconds",), "less_than_equal"),
        ({"capabilities": [f"c{i}" for i in range(MAX_CAPABILITIES + 1)]}, ("capabilities",), "too_long"),
        ({"capabilities": ["GPU"]}, ("capabilities", 0), "string_pattern_mismatch"),
        ({"capabilities": ["has space"]}, ("capabilities", 0), "string_pattern_mismatch"),
        ({"phases": ["plan", "build", "plan"]}, ("phases",), "value_error"),
        ({"run_at": "2026-03-01T12:00:00"}, ("run_at",), "timezone_aware"),
        ({"payload": nested(MAX_PAYLOAD_DEPTH + 1)}, ("payload",), "value_error"),
        ({"retry": {"base_seconds": 10, "max_seconds": 5}}, ("retry",), "value_error"),
        ({"retry": {"max_attempts": 0}}, ("retry", "max_attempts"), "greater_than_equal"),
        ({"retry": {"jitter": 1.5}}, ("retry", "jitter"), "less_than_equal"),
        ({"priority": 101}, ("priority",), "less_than_equal"),
        ({"priority": "urgent"}, ("priority",), "value_error"),
        ({"queue": "Default"}, ("queue",), "string_pattern_mismatch"),
        ({"budget": {"usd": -1}}, ("budget", "usd"), "greater_than_equal"),
        ({"profile": {"name": "p", "version": 0}}, ("profile", "version"), "greater_than_equal"),
        ({"colour": "blue"}, ("colour",), "extra_forbidden"),
        ({"retry": {"attempts": 3}}, ("retry", "attempts"), "extra_forbidden"),
    ],
)
def test_invalid_spec_fails_at_the_right_field(
    overrides: dict[str, Any], loc: tuple[Any, ...], error_type: str
) -> None:
    # Given one bad field / When parsed / Then exactly that field is blamed
    error = only_error(JobSpec, {"payload": {"n": 1}, **overrides})
    assert (error["loc"], error["type"]) == (loc, error_type)


def test_duplicate_deps_fail_on_deps() -> None:
    # Given the same job twice, once bare and once as an object
    a = uuid4()
    error = only_error(JobSpec, {"deps": [str(a), {"job_id": str(a), "mode": "soft"}]})
    # Then deps is blamed with a message saying why
    assert error["loc"] == ("deps",)
    assert "more than once" in error["msg"]


def test_phase_and_retry_messages_say_what_to_do() -> None:
    assert "unique" in only_error(JobSpec, {"phases": ["a", "a"]})["msg"]
    assert "max_seconds" in only_error(JobSpec, {"retry": {"base_seconds": 9, "max_seconds": 1}})["msg"]
    assert str(MAX_PAYLOAD_DEPTH) in only_error(JobSpec, {"payload": nested(40)})["msg"]


@pytest.mark.parametrize("mode", ["strong", "HARD", 1, [], ["hard"], {}, 0, ""])
def test_bad_deps_mode_is_a_validation_error_naming_deps_mode(mode: Any) -> None:
    # Given a deps_mode that is not 'hard' or 'soft' (including unhashable and falsy junk)
    # When parsed / Then a ValidationError (never a TypeError) names deps_mode
    error = only_error(JobSpec, {"deps": [str(uuid4())], "deps_mode": mode})
    assert "deps_mode" in error["msg"]


# Dependencies are parsed in a model-level validator, so pydantic reports their errors
# at the dependency's own field (``("mode",)``), or at the root, not at ``("deps", i)``.
# These tests pin the field name and the message, not that (arguably wrong) prefix.


def test_bad_mode_inside_a_dependency_object_names_mode() -> None:
    error = only_error(JobSpec, {"deps": [{"job_id": str(uuid4()), "mode": "sometimes"}]})
    assert (error["loc"][-1], error["type"]) == ("mode", "enum")


def test_bad_milestone_inside_a_dependency_object_names_milestone() -> None:
    error = only_error(JobSpec, {"deps": [{"job_id": str(uuid4()), "milestone": "Not A Slug"}]})
    assert (error["loc"][-1], error["type"]) == ("milestone", "string_pattern_mismatch")


@pytest.mark.parametrize("dep", ["not-a-uuid", {"job_id": "not-a-uuid"}, 42, None])
def test_bad_dependency_id_is_a_validation_error(dep: Any) -> None:
    error = only_error(JobSpec, {"deps": [dep]})
    assert "UUID" in error["msg"] or "dictionary" in error["msg"], error


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_because_json_cannot_store_them(number: float) -> None:
    # Given NaN or Infinity in the payload, a budget or a report
    # Then they are refused at the edge: stored as JSON they would come back as null
    assert only_error(JobSpec, {"payload": {"x": [number]}})["loc"][0] == "payload"
    assert only_error(JobSpec, {"budget": {"usd": number}})["loc"] == ("budget", "usd")
    assert only_error(FactoryReport, {"factory_id": "f-1", "load": number})["loc"] == ("load",)
    assert (
        only_error(ProfileSpec, {"name": "p", "version": 1, "content": {"t": number}})["loc"][0] == "content"
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_json_text_are_refused(literal: str) -> None:
    # Given JSON text with a non-standard literal that pydantic's parser accepts
    with pytest.raises(pydantic.ValidationError) as caught:
        JobSpec.model_validate_json('{"payload": {"x": {"y": ' + literal + "}}}")
    # Then the payload is blamed
    assert caught.value.errors()[0]["loc"] == ("payload",)


def test_factory_report_rejects_negative_load_and_unknown_health() -> None:
    base = {"factory_id": "f-1"}
    assert only_error(FactoryReport, {**base, "load": -0.1})["loc"] == ("load",)
    assert only_error(FactoryReport, {**base, "health": "sick"})["loc"] == ("health",)
    assert only_error(FactoryReport, {**base, "seat_limit": 0})["loc"] == ("seat_limit",)
    assert only_error(FactoryReport, {"factory_id": "Bad Name"})["loc"] == ("factory_id",)


def test_profile_spec_rejects_version_zero_and_extra_fields() -> None:
    assert only_error(ProfileSpec, {"name": "coder", "version": 0})["loc"] == ("version",)
    assert only_error(ProfileSpec, {"name": "coder", "version": 1, "x": 1})["type"] == "extra_forbidden"


# ---------------------------------------------------------------- content hash


def test_equal_intent_hashes_equally() -> None:
    # Given the same intent written three different ways
    dep = uuid4()
    a = make_spec(payload={"a": 1, "b": [1, 2]}, priority="high", capabilities=["gpu", "cpu"], deps=[dep])
    b = make_spec(
        payload={"b": [1, 2], "a": 1},
        priority=10,
        capabilities=["cpu", "gpu", "cpu"],
        deps=[{"job_id": str(dep), "mode": "hard"}],
    )
    c = make_spec(payload={"a": 1, "b": [1, 2]}, priority="10", capabilities=["cpu", "gpu"], deps=[str(dep)])
    # Then they hash equally
    assert a.content_hash() == b.content_hash() == c.content_hash()


def test_idempotency_key_is_not_part_of_the_hash() -> None:
    assert make_spec(idempotency_key="k-1").content_hash() == make_spec(idempotency_key="k-2").content_hash()
    assert make_spec(idempotency_key="k-1").content_hash() == make_spec().content_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"n": 2}},
        {"priority": "low"},
        {"queue": "other"},
        {"phases": ["a"]},
        {"lease_seconds": 61},
    ],
)
def test_different_intent_hashes_differently(change: dict[str, Any]) -> None:
    assert make_spec(**change).content_hash() != make_spec().content_hash()


# ------------------------------------------------------------------ properties

names = st.from_regex(r"\A[a-z0-9][a-z0-9_.:-]{0,12}\Z")
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
# Whole-minute offsets only: pydantic serialises an offset without its seconds.
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC) | offsets
)


@st.composite
def retry_policies(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.floats(0.001, 3600))
    return {
        "max_attempts": draw(st.integers(1, 1000)),
        "backoff": draw(st.sampled_from(["exponential", "linear", "constant"])),
        "base_seconds": base,
        "max_seconds": draw(st.floats(base, 7 * 86_400)),
        "jitter": draw(st.floats(0, 1)),
        "retry_on": draw(st.none() | st.lists(names, max_size=3)),
    }


@st.composite
def dependency_inputs(draw: st.DrawFn) -> list[Any]:
    ids = draw(st.lists(st.uuids(), max_size=4, unique=True))
    shapes: list[Callable[[UUID], Any]] = [
        str,
        lambda i: {"job_id": str(i)},
        lambda i: {"job_id": str(i), "mode": draw(st.sampled_from(["hard", "soft"]))},
        lambda i: {"job_id": str(i), "mode": "soft", "milestone": draw(names)},
    ]
    return [draw(st.sampled_from(shapes))(i) for i in ids]


@st.composite
def spec_inputs(draw: st.DrawFn) -> dict[str, Any]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "idempotency_key": st.text(min_size=1, max_size=20),
        "queue": names,
        "kind": st.sampled_from(["leaf", "composite"]),
        "priority": st.integers(0, 100) | st.sampled_from(["critical", "high", "medium", "low"]),
        "capabilities": st.lists(names, max_size=5),
        "deps": dependency_inputs(),
        "deps_mode": st.sampled_from(["hard", "soft"]),
        "run_at": aware,
        "payload": st.dictionaries(st.text(max_size=5), json_values, max_size=4),
        "retry": retry_policies(),
        "lease_seconds": st.floats(0.001, 86_400),
        "budget": st.fixed_dictionaries(
            {},
            optional={
                "usd": st.floats(0, 1e6),
                "tokens": st.integers(0, 10**9),
                "wall_seconds": st.floats(0.5, 1e6),
            },
        ),
        "parent_id": st.uuids().map(str),
        "phases": st.lists(names, max_size=5, unique=True),
        "profile": st.fixed_dictionaries({"name": names, "version": st.integers(1, 50)}),
    }
    return draw(st.fixed_dictionaries({}, optional=optional))


@settings(max_examples=150)
@given(spec_inputs())
def test_valid_specs_round_trip_through_json(data: dict[str, Any]) -> None:
    # Given any valid spec / When dumped as JSON-ready data and parsed again
    spec = JobSpec.model_validate(data)
    again = JobSpec.model_validate(spec.model_dump(mode="json"))
    # Then nothing changed, not even the hash; and the stored JSON text reads back equal
    assert again == spec
    assert again.content_hash() == spec.content_hash()
    assert JobSpec.model_validate_json(spec.json_text) == spec


field_names = st.sampled_from([*JobSpec.model_fields, "deps_mode"])
junk_values = st.recursive(
    json_scalars | st.floats() | st.uuids() | aware | st.datetimes(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5) | field_names | st.just("job_id"), inner, max_size=3)
    ),
    max_leaves=10,
)
junk = junk_values | st.dictionaries(field_names | st.text(max_size=5), junk_values, max_size=5)


@settings(max_examples=300)
@given(junk)
def test_junk_never_raises_anything_but_validation_error(data: Any) -> None:
    # Given arbitrary input / When parsed / Then it is a spec or a ValidationError
    with contextlib.suppress(pydantic.ValidationError):
        JobSpec.model_validate(data)


def test_counts_and_profile_versions_stop_where_the_stores_do() -> None:
    # 64-bit columns everywhere (SQLite, PostgreSQL bigint, ClickHouse UInt64) and exact in
    # JSON for every client: 2**53 - 1. Profile versions are PostgreSQL int columns.
    assert Budget(tokens=MAX_COUNT).tokens == MAX_COUNT
    assert RunInsights(tokens_in=MAX_COUNT, lines_deleted=MAX_COUNT).tokens_in == MAX_COUNT
    for make in (
        lambda: Budget(tokens=MAX_COUNT + 1),
        lambda: RunInsights(tool_calls=MAX_COUNT + 1),
        lambda: Artifact(uri="s3://b/k", sha256="0" * 64, size=MAX_COUNT + 1),
        lambda: ProfileRef(name="p", version=MAX_PROFILE_VERSION + 1),
        lambda: ProfileSpec(name="p", version=MAX_PROFILE_VERSION + 1),
    ):
        with pytest.raises(pydantic.ValidationError, match="less than or equal to"):
            make()
    assert ProfileRef(name="p", version=MAX_PROFILE_VERSION).version == MAX_PROFILE_VERSION
