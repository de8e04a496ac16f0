"""What every service needs: the store, the clock, ids, randomness, and a transaction
runner that retries the whole unit of work on a retryable conflict."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from coordinator.errors import Conflict, Unavailable
from coordinator.ports import Clock, IdGenerator, RandomSource, Store, UnitOfWork
from domain.errors import DomainError

T = TypeVar("T")
RETRY_WAIT_MULTIPLIER = 0.005
FIRST_RETRY_WAIT = 2 * RETRY_WAIT_MULTIPLIER
"""Seconds, the upper bound of the first jittered wait (wait_random_exponential's, too)."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, Conflict | Unavailable)


@dataclass
class Deferred:
    """A refusal to raise only after the unit of work commits (it recorded an event,
    e.g. ``StaleWriteRejected``, that must not be rolled back)."""

    error: DomainError


@dataclass
class Context:
    store: Store
    clock: Clock
    ids: IdGenerator
    random: RandomSource
    transaction_attempts: int = 8

    def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` in a unit of work and commit; on a conflict (a concurrent
        transaction won a race, or the store was briefly busy) run it again from
        scratch: ``work`` reads everything it decides on inside the unit of work."""
        try:
            result = self._attempt(work)
        except (Conflict, Unavailable):
            # Most units of work commit the first time: tenacity's machinery only for the
            # rest, after the same jittered pause its first wait would have been.
            if self.transaction_attempts <= 1:
                raise
            time.sleep(FIRST_RETRY_WAIT * self.random.sample())
            retrying = Retrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self.transaction_attempts - 1),
                wait=wait_random_exponential(multiplier=RETRY_WAIT_MULTIPLIER, max=0.5),
                reraise=True,
            )
            result = retrying(self._attempt, work)
        if isinstance(result, Deferred):
            raise result.error
        return result

    def _attempt(self, work: Callable[[UnitOfWork], T]) -> T:
        with self.store.unit_of_work() as uow:
            return work(uow)
