"""The CLI's table renderer and JSON conversion (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from adapters.cli.output import MAX_CELL, Output, cell, jsonable, render, table


@dataclass(frozen=True)
class Counts:
    expired: int
    when: datetime


def test_table_aligns_columns_and_marks_empty_listings() -> None:
    # Given rows of uneven widths
    rows = [{"id": "a", "state": "queued"}, {"id": "bbbb", "state": None}]

    # When rendered
    text = table(("id", "state"), rows)

    # Then columns line up, missing values show as '-', and no line has trailing spaces
    assert text.splitlines() == ["ID    STATE", "a     queued", "bbbb  -"]
    assert table(("id",), []).splitlines() == ["ID", "(none)"]


def test_cells_are_short_single_lines() -> None:
    assert cell("2026-01-05T09:00:00.123456+00:00") == "2026-01-05 09:00:00Z"
    assert cell("2026-01-05T09:00:00") == "2026-01-05 09:00:00"
    assert cell(["gpu", "cpu"]) == "gpu,cpu"
    assert cell({"a": [1, 2]}) == '{"a":[1,2]}'
    assert cell(True) == "yes"
    assert cell("two\nlines") == "two lines"
    assert len(cell("x" * 500)) == MAX_CELL


def test_single_objects_render_as_field_value_pairs() -> None:
    # Given a dataclass result with a nested time and an id
    output = Output({"counts": Counts(1, datetime(2026, 1, 5, tzinfo=UTC)), "id": UUID(int=1)})

    # When rendered both ways
    as_json = render(output, "json")
    as_table = render(output, "table").splitlines()

    # Then JSON is plain and the table flattens nested objects to dotted fields
    assert '"when": "2026-01-05T00:00:00+00:00"' in as_json
    assert as_table[0].split() == ["FIELD", "VALUE"]
    assert as_table[1].split() == ["counts.expired", "1"]
    assert jsonable(output.data)["id"] == "00000000-0000-0000-0000-000000000001"
