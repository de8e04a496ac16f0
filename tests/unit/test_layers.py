"""Architecture: imports point inward (adapters -> coordinator -> projections -> domain).

Every import statement of every module is read with ``ast`` (including imports inside
functions), so a lazy import cannot sneak a driver into the domain.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "projections", "coordinator", "adapters")
STDLIB = frozenset(sys.stdlib_module_names)
DRIVERS = frozenset({"psycopg", "psycopg_pool", "sqlite3", "clickhouse_connect", "chdb"})

ALLOWED: dict[str, frozenset[str]] = {
    # Dotted names are allowed with everything below them; "eventsourcing.domain" allows
    # only that module of the library.
    "domain": frozenset({"pydantic", "pydantic_core", "eventsourcing.domain", "domain"}),
    "projections": frozenset({"pydantic", "pydantic_core", "domain", "projections"}),
    "coordinator": frozenset(
        {"pydantic", "pydantic_core", "tenacity", "domain", "projections", "coordinator"}
    ),
}


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def module_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imported(path: Path) -> set[str]:
    """Every absolute module name the file imports (relative imports stay in the package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def allowed(name: str, rules: frozenset[str]) -> bool:
    if name.split(".", maxsplit=1)[0] in STDLIB:
        return True
    return any(name == rule or name.startswith(rule + ".") for rule in rules)


def every_module() -> list[Path]:
    return [path for layer in LAYERS for path in modules(layer)]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_inward(layer: str) -> None:
    rules = ALLOWED[layer]
    assert modules(layer), f"no modules found under {layer}/"
    offenders = {
        module_id(path): sorted(name for name in imported(path) if not allowed(name, rules))
        for path in modules(layer)
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_only_adapters_import_drivers() -> None:
    offenders = {
        module_id(path): sorted(n for n in imported(path) if n.split(".")[0] in DRIVERS)
        for layer in LAYERS
        if layer != "adapters"
        for path in modules(layer)
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_the_rule_itself_catches_a_driver_and_a_relative_escape() -> None:
    # A check that can never fail proves nothing: show it refuses what it must.
    assert not allowed("psycopg", ALLOWED["domain"])
    assert not allowed("eventsourcing.persistence", ALLOWED["domain"])
    assert not allowed("coordinator.fleet", ALLOWED["projections"])
    assert allowed("eventsourcing.domain", ALLOWED["domain"])
    assert allowed("collections.abc", ALLOWED["domain"])


def is_empty(tree: ast.Module) -> bool:
    """No statements, or only a docstring."""
    body = tree.body
    return not body or (
        len(body) == 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def starts_with_future_annotations(tree: ast.Module) -> bool:
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    first = body[0] if body else None
    return (
        isinstance(first, ast.ImportFrom)
        and first.module == "__future__"
        and any(alias.name == "annotations" for alias in first.names)
    )


def test_every_module_starts_with_future_annotations() -> None:
    missing = []
    for path in every_module():
        tree = ast.parse(path.read_text(), filename=str(path))
        if not (path.name == "__init__.py" and is_empty(tree)) and not starts_with_future_annotations(tree):
            missing.append(module_id(path))
    assert missing == []
