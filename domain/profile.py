"""The Profile aggregate: a named, versioned, immutable snapshot of how to run jobs
(model, prompts, tools...). Jobs reference a profile by name and version."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate
from pydantic import Field, JsonValue

from domain.events import CreationEvent
from domain.job.spec import Frozen, JsonObject, Name
from domain.limits import ProfileVersion
from domain.transitions import INITIAL, Transition, TransitionTable

PROFILE_NAMESPACE = uuid5(NAMESPACE_URL, "https://fleetlog.dev/profile")


def profile_uuid(tenant: str, name: str, version: int) -> UUID:
    return uuid5(PROFILE_NAMESPACE, f"{tenant}/{name}/{version}")


class ProfileState(StrEnum):
    REGISTERED = "registered"


class ProfileSpec(Frozen):
    name: Name
    version: ProfileVersion
    content: JsonObject = Field(default_factory=dict)

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.content, sort_keys=True).encode()).hexdigest()


class ProfileRegistered(CreationEvent):
    tenant: str
    name: str
    version: int
    content: dict[str, JsonValue]
    content_hash: str


PROFILE_TRANSITIONS: TransitionTable[ProfileState] = TransitionTable(
    "Profile", {ProfileRegistered: Transition.of([INITIAL], [ProfileState.REGISTERED])}
)


class Profile(BaseAggregate[UUID]):
    def __init__(self) -> None:
        self.tenant = ""
        self.name = ""
        self.version_number = 0
        self.content: dict[str, JsonValue] = {}
        self.content_hash = ""
        self.state = ProfileState.REGISTERED

    @classmethod
    def register(cls, tenant: str, spec: ProfileSpec, now: datetime) -> Profile:
        PROFILE_TRANSITIONS.check(ProfileRegistered, None)
        return cls._create(
            ProfileRegistered,
            id=profile_uuid(tenant, spec.name, spec.version),
            timestamp=now,
            tenant=tenant,
            name=spec.name,
            version=spec.version,
            content=spec.content,
            content_hash=spec.content_hash(),
        )

    def apply(self, event: ProfileRegistered) -> None:
        self.tenant = event.tenant
        self.name = event.name
        self.version_number = event.version
        self.content = event.content
        self.content_hash = event.content_hash
