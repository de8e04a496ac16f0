"""The real clock, id generator and random source."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from uuid import UUID

import uuid6


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Ids:
    """Time-ordered ids: new jobs land at the end of the primary-key index."""

    def new_id(self) -> UUID:
        return UUID(bytes=uuid6.uuid7().bytes)


class SystemRandom:
    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)

    def sample(self) -> float:
        return self._random.random()
