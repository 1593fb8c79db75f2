"""The one-way import rule of docs/architecture.md, checked on the source (AST, no imports run).

deployments → flows → tasks → domain → models / ozmap; cli and service use domain; the core never
imports Prefect; nothing imports a flow except deployments (and the cli through them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package → top-level packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "models": {"prefect", "domain", "tasks", "flows", "deployments", "service", "cli", "ozmap"},
    "ozmap": {"prefect", "domain", "tasks", "flows", "deployments", "service", "cli", "models"},
    "domain": {"prefect", "tasks", "flows", "deployments", "service", "cli"},
    "tasks": {"flows", "deployments", "service", "cli"},
    "flows": {"deployments", "service", "cli"},
    "service": {"flows", "tasks", "deployments", "cli"},
    "simulator": {"domain", "tasks", "flows", "deployments", "service", "cli", "models"},
    "config": {"prefect", "domain", "tasks", "flows", "deployments", "service", "cli", "models"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found under {package}/"
    bad = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        if "migrations" not in path.parts
        for name in _imports(path) & FORBIDDEN[package]
    }
    assert sorted(bad) == []
