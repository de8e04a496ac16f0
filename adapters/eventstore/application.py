"""The eventsourcing ``Application`` that owns Fleetlog's event store.

Built only from the environment the composition root passes (never ``os.environ``),
with Fleetlog's recorder subclasses and the pydantic mapper.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import Environment, EnvType

EVENTS_TABLE = "fleetlog_events"


class FleetEventStore(Application[UUID]):
    name = "Fleetlog"

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # Nothing ambient: the library would otherwise merge os.environ in here.
        base = {
            "MAPPER_TOPIC": "adapters.eventstore.mapper:PydanticMapper",
            "TRANSCODER_TOPIC": "adapters.eventstore.mapper:JSONTextTranscoder",
            "CREATE_TABLE": "n",  # migrations/ own the schema
        }
        base.update(env or {})
        return Environment(name, base)
