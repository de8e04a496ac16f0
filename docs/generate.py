"""Regenerate docs/STATES.md from the transition tables in the code.

.venv/bin/python docs/generate.py          # rewrite the file
.venv/bin/python docs/generate.py --check  # exit 1 if it is out of date (a test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

from domain.factory import FACTORY_TRANSITIONS
from domain.job import JOB_TRANSITIONS
from domain.job.states import LEAVING, JobState
from domain.profile import PROFILE_TRANSITIONS
from domain.tenant import TENANT_TRANSITIONS

TARGET = Path(__file__).with_name("STATES.md")


def render() -> str:
    parts = [
        "# State machines",
        "",
        "Generated from the transition tables in `domain/` by `docs/generate.py`; do not edit by hand.",
        "An event may only happen in the states it leaves from; its command checks the table first.",
        "",
        "## Job",
        "",
        "Which service or actor moves a job out of each state:",
        "",
    ]
    for state in JobState:
        parts.append(f"- `{state.value}`: {LEAVING[state]}")
    parts += ["", "```mermaid", JOB_TRANSITIONS.mermaid(), "```", ""]
    parts += _self_loops(JOB_TRANSITIONS.self_loops())
    others = (
        ("Factory", FACTORY_TRANSITIONS),
        ("Profile", PROFILE_TRANSITIONS),
        ("Tenant", TENANT_TRANSITIONS),
    )
    for name, table in others:
        parts += [f"## {name}", "", "```mermaid", table.mermaid(), "```", ""]
        parts += _self_loops(table.self_loops())
    return "\n".join(parts)


def _self_loops(loops: dict[str, list[str]]) -> list[str]:
    if not loops:
        return []
    lines = ["Events that leave the state unchanged:", "", "| event | may happen in |", "|---|---|"]
    lines += [f"| `{event}` | {', '.join(states)} |" for event, states in loops.items()]
    return [*lines, ""]


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run .venv/bin/python docs/generate.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
