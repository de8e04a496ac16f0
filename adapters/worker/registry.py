"""Handler registries: a ``dict[str, Handler]`` keyed by queue name ("*" = any queue),
loaded from ``module:attribute`` on the command line."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping

from adapters.worker.context import Handler

ANY_QUEUE = "*"
_QUEUE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,62}$")


def claim_queues(handlers: Mapping[str, Handler], queues: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The queues to claim from: ``queues`` if each has a handler, else the handlers'
    queues; None (every queue) when there is a catch-all handler and no restriction."""
    if not handlers:
        raise ValueError("a worker needs at least one handler")
    for key, handler in handlers.items():
        if key != ANY_QUEUE and not _QUEUE.match(key):
            raise ValueError(f"handler key {key!r} is not a queue name (or '{ANY_QUEUE}')")
        if not callable(handler):
            raise ValueError(f"the handler for {key!r} is not callable")
    if queues is not None:
        missing = [q for q in queues if q not in handlers and ANY_QUEUE not in handlers]
        if missing:
            raise ValueError(
                f"no handler for queue(s) {', '.join(missing)}; handlers cover: {', '.join(sorted(handlers))}"
            )
        return queues
    if ANY_QUEUE in handlers:
        return None
    return tuple(sorted(handlers))


def load_handlers(target: str) -> dict[str, Handler]:
    """``package.module:NAME`` -> the registry it names."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"--handlers wants module:attribute (e.g. adapters.worker.examples:HANDLERS), got {target!r}"
        )
    module = importlib.import_module(module_name)
    registry = getattr(module, attribute, None)
    if not isinstance(registry, Mapping):
        raise ValueError(f"{target} is not a mapping of queue name -> handler")
    return dict(registry)
