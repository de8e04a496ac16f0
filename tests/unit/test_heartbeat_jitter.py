"""The worker's heartbeats are spread: each wait is the interval shortened by a random
fraction up to the jitter, never lengthened, so workers started together do not heartbeat
in step and none waits longer than its interval."""

from __future__ import annotations

import random
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.worker import WorkerConfig
from adapters.worker.__main__ import parser, worker_config
from adapters.worker.runtime import Worker, heartbeat_waits
from domain.factory import FactoryReport
from tests.unit.test_worker_refusals import RefusingPort


@given(
    interval=st.floats(min_value=0.001, max_value=86_400),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
    seed=st.integers(),
)
def test_every_wait_is_inside_the_interval_and_at_most_jitter_shorter(
    interval: float, jitter: float, seed: int
) -> None:
    for wait in islice(heartbeat_waits(interval, jitter, random.Random(seed)), 50):
        assert interval * (1 - jitter) <= wait <= interval


def test_without_jitter_every_wait_is_the_interval() -> None:
    assert list(islice(heartbeat_waits(5.0, 0.0), 10)) == [5.0] * 10


def test_workers_started_together_draw_different_waits() -> None:
    # Unseeded by default: two workers of one fleet do not repeat each other's waits
    first, second = (list(islice(heartbeat_waits(5.0, 0.2), 20)) for _ in range(2))
    assert first != second
    assert len(set(first)) > 1  # and one worker's waits vary among themselves


class AcceptingPort(RefusingPort):
    def heartbeat(self, report: FactoryReport) -> None:
        self.heartbeats += 1


class CountedStop:
    """Stands in for the heartbeat loop's stop event: records each wait, stops after some."""

    def __init__(self, waits: int):
        self.asked: list[float] = []
        self._left = waits

    def wait(self, timeout: float) -> bool:
        self.asked.append(timeout)
        self._left -= 1
        return self._left < 0


def test_the_heartbeat_loop_waits_the_drawn_times_between_heartbeats() -> None:
    config = WorkerConfig(factory_id="f1", heartbeat_interval=4.0, heartbeat_jitter=0.5)
    port = AcceptingPort()
    worker = Worker(port, {"q": lambda ctx: None}, config, rng=random.Random(11))  # type: ignore[arg-type]
    stop = CountedStop(waits=3)
    worker._heartbeat_stop = stop  # type: ignore[assignment]
    worker._heartbeat_loop()
    expected = list(islice(heartbeat_waits(4.0, 0.5, random.Random(11)), 4))
    assert stop.asked == expected
    assert all(2.0 <= wait <= 4.0 for wait in stop.asked) and len(set(stop.asked)) == 4
    assert port.heartbeats == 3  # one after each wait that did not stop the loop


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_a_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValidationError, match="heartbeat_jitter"):
        WorkerConfig(factory_id="f1", heartbeat_jitter=jitter)


def test_the_command_line_sets_the_jitter_and_defaults_it() -> None:
    given_jitter = parser().parse_args(["--handlers", "m:r", "--heartbeat-jitter", "0.5"])
    assert worker_config(given_jitter, "f1").heartbeat_jitter == 0.5
    assert worker_config(parser().parse_args(["--handlers", "m:r"]), "f1").heartbeat_jitter == 0.2
