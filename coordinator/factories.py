"""Factories (worker hosts): heartbeats and listing; profiles: register and look up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from coordinator.context import Context
from coordinator.errors import InvalidRequest, validation_errors
from coordinator.identity import Identity, Role
from coordinator.ports import UnitOfWork
from coordinator.views import FactoryView
from domain.errors import ProfileConflict
from domain.factory import Factory, FactoryReport
from domain.profile import Profile, ProfileSpec
from projections.factory_rows import factory_row


def _parse(model: Any, data: Any, what: str) -> Any:
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(what, validation_errors(exc)) from None


class Factories:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def heartbeat(self, identity: Identity, report: FactoryReport | Mapping[str, Any]) -> FactoryView:
        """Record that a factory is alive (and its health, load, capabilities, seats);
        a factory marked down rejoins with its next heartbeat."""
        identity.require(Role.WORKER, "heartbeat")
        parsed: FactoryReport = _parse(FactoryReport, report, "heartbeat")

        def work(uow: UnitOfWork) -> FactoryView:
            now = self.ctx.clock.now()
            factory = uow.lock_factory(parsed.factory_id)
            if factory is None:
                factory = Factory.register(parsed, now)
            else:
                factory.heartbeat(parsed, now)
            uow.add(factory)
            return FactoryView.of(factory_row(factory), now)

        return self.ctx.transact(work)

    def list_factories(self, identity: Identity) -> list[FactoryView]:
        identity.require(Role.READER, "list factories")
        now = self.ctx.clock.now()
        return [FactoryView.of(row, now) for row in self.ctx.store.factories()]


class Profiles:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def register(self, identity: Identity, spec: ProfileSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Profiles are immutable: registering identical content again is a no-op,
        different content under the same name and version is refused."""
        identity.require(Role.SUBMITTER, "register a profile")
        tenant = identity.write_tenant("register a profile")
        parsed: ProfileSpec = _parse(ProfileSpec, spec, "profile")

        def work(uow: UnitOfWork) -> dict[str, Any]:
            existing = uow.get_profile(tenant, parsed.name, parsed.version)
            if existing is not None:
                if existing.content_hash != parsed.content_hash():
                    raise ProfileConflict(parsed.name, parsed.version)
                return {"name": parsed.name, "version": parsed.version, "created": False}
            uow.add(Profile.register(tenant, parsed, self.ctx.clock.now()))
            return {"name": parsed.name, "version": parsed.version, "created": True}

        return self.ctx.transact(work)
