"""Rendering results: JSON for scripts (the default) or a compact aligned table.

Handlers return an ``Output``; ``render`` turns it into text. A table shows ``rows``
under ``columns`` when the handler gives them, otherwise the data as field/value pairs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

FORMATS = ("json", "table")
MAX_CELL = 60
_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")

EXIT_OK = 0
EXIT_DIFFERENCES = 1
"""Only ``projections verify``: the views differ from the log."""
EXIT_ERROR = 2
"""A refusal or bad input (also argparse's usage errors)."""
EXIT_INTERNAL = 3
"""A bug: an error nobody expected."""
EXIT_BROKEN_PIPE = 141
"""Standard output was closed early (128 + SIGPIPE, as a shell reports it)."""


@dataclass(frozen=True)
class Output:
    data: Any
    columns: Sequence[str] | None = None
    rows: Sequence[Any] | None = None
    """Table rows (dicts or models) when they differ from ``data`` (default: ``data``
    itself if it is a list)."""
    footer: str | None = None
    exit_code: int = EXIT_OK


def jsonable(value: Any) -> Any:
    """Plain JSON values from models, dataclasses, ids, times and enums."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def to_json(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)


def render(output: Output, fmt: str) -> str:
    if fmt == "json":
        return to_json(output.data)
    data = jsonable(output.data)
    rows = output.rows if output.rows is not None else data if isinstance(data, list) else None
    if rows is None:
        text = table(("field", "value"), [{"field": k, "value": v} for k, v in flatten(data).items()])
    else:
        rows = [jsonable(r) for r in rows]
        columns = output.columns or (tuple(rows[0]) if rows else ("result",))
        text = table(columns, rows)
    return text if output.footer is None else f"{text}\n{output.footer}"


def flatten(data: Any, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Nested objects as dotted keys (``lease.epoch``), down to ``depth`` levels."""
    if not isinstance(data, dict):
        return {prefix or "result": data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and depth > 0:
            out.update(flatten(value, name, depth - 1))
        else:
            out[name] = value
    return out


def table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [_line([c.upper() for c in columns], widths)]
    lines += [_line(r, widths) for r in cells]
    if not cells:
        lines.append("(none)")
    return "\n".join(lines)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()


def cell(value: Any) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ",".join(str(v) for v in value) or "-"
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(value, str) and (m := _ISO.match(value)):
        zone = "Z" if m[3] in ("Z", "+00:00") else m[3] or ""
        text = f"{m[1]} {m[2]}{zone}"
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row, whatever the value holds
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
