"""Pure parts of the worker runtime: error kinds, configuration, handler registries,
the polling backoff, and the example handlers' arithmetic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.store.signals import PollBackoff
from adapters.worker import WorkerConfig
from adapters.worker.context import NonRetryable, error_kind
from adapters.worker.examples import HANDLERS, phase_at, resume_point
from adapters.worker.registry import claim_queues


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ValueError", "value_error"),
        ("HTTPError", "http_error"),
        ("TimeoutError", "timeout_error"),
        ("bad-input", "bad-input"),
        ("Bad Input!", "bad_input"),
        ("???", "error"),
    ],
)
def test_error_kinds_are_lower_case_slugs(name: str, kind: str) -> None:
    assert error_kind(name) == kind


def test_non_retryable_normalises_its_kind() -> None:
    assert NonRetryable("Quota Exceeded", "try tomorrow").kind == "quota_exceeded"


def test_worker_config_has_named_defaults() -> None:
    config = WorkerConfig(factory_id="f1")
    assert config.concurrency == 4
    assert config.renew_fraction == pytest.approx(1 / 3)
    assert config.completion_flush_ms == 50
    assert config.completion_batch_max == 100
    assert config.lease_seconds is None


def test_a_heartbeat_interval_must_fit_inside_the_timeout() -> None:
    with pytest.raises(ValidationError, match="heartbeat_interval"):
        WorkerConfig(factory_id="f1", heartbeat_interval=10, heartbeat_timeout=5)


def test_claim_queues_come_from_the_handlers_unless_one_takes_any_queue() -> None:
    assert claim_queues(HANDLERS, None) == ("fail", "noop", "sleep")
    assert claim_queues({"*": HANDLERS["noop"]}, None) is None
    assert claim_queues({"*": HANDLERS["noop"]}, ("a", "b")) == ("a", "b")
    with pytest.raises(ValueError, match="no handler for queue"):
        claim_queues(HANDLERS, ("noop", "other"))


def test_poll_backoff_grows_while_idle_and_resets_on_work() -> None:
    backoff = PollBackoff(initial=0.001, maximum=0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        backoff.wait(1.0)
    assert delays == [0.001, 0.002, 0.004, 0.004]
    backoff.work_found()
    assert backoff.delay == 0.001


def test_the_sleep_handler_resumes_from_a_checkpoint_and_spreads_its_phases() -> None:
    assert resume_point({"done": 7}) == 7
    assert resume_point(None) == resume_point({"done": "x"}) == 0
    phases = ("download", "parse")
    assert [phase_at(phases, done, 4) for done in range(5)] == [
        "download",
        "download",
        "parse",
        "parse",
        "parse",
    ]
