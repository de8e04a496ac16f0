"""Turning command-line text into values: JSON arguments, JSON files (or stdin), and
pydantic models whose validation errors become ``InvalidRequest``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.cli.errors import InputUnreadable, InvalidJson, WrongJsonType
from coordinator.errors import InvalidRequest, validation_errors

M = TypeVar("M", bound=BaseModel)
STDIN = "-"


def parse_json(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJson(flag, exc) from None


def json_object(text: str, flag: str) -> dict[str, Any]:
    value = parse_json(text, flag)
    if not isinstance(value, dict):
        raise WrongJsonType(flag, "object", value)
    return value


def read_text(path: str, flag: str) -> str:
    """The contents of ``path``, or of standard input when ``path`` is ``-``."""
    if path == STDIN:
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputUnreadable(flag, path, reason) from None


def build_model(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(what, validation_errors(exc)) from None
