"""What every service needs: the store, the clock, ids, randomness, and a transaction
runner that retries the whole unit of work on a retryable conflict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from coordinator.errors import Conflict, Unavailable
from coordinator.ports import Clock, IdGenerator, RandomSource, Store, UnitOfWork
from domain.errors import DomainError

T = TypeVar("T")


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
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.transaction_attempts),
            wait=wait_random_exponential(multiplier=0.005, max=0.5),
            reraise=True,
        )
        for attempt in retrying:
            with attempt, self.store.unit_of_work() as uow:
                result = work(uow)
        if isinstance(result, Deferred):
            raise result.error
        return result
