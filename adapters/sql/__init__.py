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
        named[name] = _without_trailing_comments(body)
    return named


def _without_trailing_comments(body: str) -> str:
    """The statement, without the comment lines that follow it (the next section's
    heading): queries are joined into multi-statement strings, where a trailing
    ``-- comment`` would swallow whatever comes after it on the same line."""
    lines = body.strip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        lines.pop()
    return "\n".join(lines).strip().rstrip(";")
