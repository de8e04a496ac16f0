"""The rows factories and profiles contribute to their views."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.factory import Factory
from domain.profile import Profile
from projections.job_rows import canonical


@dataclass(frozen=True, slots=True)
class FactoryRow:
    """``fleet_factories``: one row per worker host (and its hot-path snapshot)."""

    factory_id: str
    health: str
    capabilities: tuple[str, ...]
    seat_limit: int | None
    load: float
    heartbeat_timeout_seconds: float | None
    last_heartbeat_at: datetime
    registered_at: datetime
    version: int
    snapshot_json: str

    def comparable(self) -> tuple[Any, ...]:
        return (*(getattr(self, f) for f in self.__slots__[:-1]), canonical(self.snapshot_json))


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """``fleet_profiles``: immutable named, versioned profiles per tenant."""

    profile_id: UUID
    tenant: str
    name: str
    version: int
    content_hash: str
    content_json: str
    registered_at: datetime

    def comparable(self) -> tuple[Any, ...]:
        return (
            *(getattr(self, f) for f in self.__slots__[:-2]),
            canonical(self.content_json),
            self.registered_at,
        )


def factory_row(factory: Factory) -> FactoryRow:
    return FactoryRow(
        factory_id=factory.name,
        health=str(factory.health),
        capabilities=factory.capabilities,
        seat_limit=factory.seat_limit,
        load=factory.load,
        heartbeat_timeout_seconds=factory.heartbeat_timeout_seconds,
        last_heartbeat_at=factory.last_heartbeat_at,
        registered_at=factory.created_on,
        version=factory.version,
        snapshot_json=factory.to_snapshot().model_dump_json(),
    )


def profile_row(profile: Profile) -> ProfileRow:
    return ProfileRow(
        profile_id=profile.id,
        tenant=profile.tenant,
        name=profile.name,
        version=profile.version_number,
        content_hash=profile.content_hash,
        content_json=json.dumps(profile.content, sort_keys=True),
        registered_at=profile.created_on,
    )
