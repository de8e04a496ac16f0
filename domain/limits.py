"""Upper limits on integers a command may carry, and the validation context that lifts
them for what is read back from the log.

A limit enforced where a value is declared also applies when an event or a snapshot that
holds the value is validated on the way back from the store. A limit added after a value
was accepted must not make that history unreadable (a replay, a rebuild, the analytics
consumer), so these limits are checked unless the validation context is ``STORED``, which
every reader of stored events, specs and snapshots passes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo
from pydantic_core import PydanticKnownError

STORED: dict[str, Any] = {"stored": True}
"""``model_validate(..., context=STORED)``: the value comes from the store, where what was
accepted once stays readable."""

MAX_COUNT = 2**53 - 1
"""The largest count a job or a report may carry: exact as a JSON number in every client
(JavaScript's ``Number.MAX_SAFE_INTEGER``) and inside every store's 64-bit integer columns
(SQLite INTEGER, PostgreSQL bigint, ClickHouse UInt64). Before the limit, a bare ``ge=0``
let 10**22 through to SQLite's OverflowError (a 500) and toward the analytics consumer's
UInt64 columns."""
MAX_PROFILE_VERSION = 2**31 - 1
"""Profile versions are ``int`` columns on PostgreSQL."""


def at_most(limit: int) -> Any:
    """``le=limit`` (same error, same JSON Schema ``maximum``), lifted for ``STORED``."""

    def check(value: int, info: ValidationInfo) -> int:
        if value > limit and not (info.context or {}).get("stored"):
            raise PydanticKnownError("less_than_equal", {"le": limit})
        return value

    return AfterValidator(check)


Count = Annotated[int, Field(ge=0, json_schema_extra={"maximum": MAX_COUNT}), at_most(MAX_COUNT)]
ProfileVersion = Annotated[
    int, Field(ge=1, json_schema_extra={"maximum": MAX_PROFILE_VERSION}), at_most(MAX_PROFILE_VERSION)
]
