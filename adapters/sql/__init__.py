"""Named SQL queries, one file per backend, the same names in both (a contract test checks)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def queries(backend: str) -> dict[str, str]:
    """``{name: sql}`` parsed from ``adapters/sql/<backend>.sql`` (``-- name: x`` blocks)."""
    text = resources.files(__package__).joinpath(f"{backend}.sql").read_text()
    parts = _NAME.split(text)
    named = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"{backend}.sql defines query '{name}' twice")
        named[name] = body.strip().rstrip(";")
    return named
