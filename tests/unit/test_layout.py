"""The folders show the architecture: one package per concern, arrows one way, no cycles.

Every import of `src/` counts, those made for type checking and inside functions too: a
cycle hidden behind `if TYPE_CHECKING` or a late import is still a cycle for a reader.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

PACKAGE = "opencode_mcp_gateway"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# What each package may import of the gateway (the arrows of the package docstrings).
ALLOWED: dict[str, set[str]] = {
    "primitives": set(),
    "config": set(),
    "observability": set(),
    "auth": {"config"},
    "opencode": {"config", "observability", "primitives"},
    "workspaces": {"config", "observability", "opencode", "primitives"},
    "tasks": {"config", "observability", "opencode", "primitives", "workspaces"},
    "fleet": {"config", "observability", "opencode", "primitives", "tasks", "workspaces"},
    # Completion webhooks: built on the task layer's reads (views, bounds, ids) and OpenCode's
    # records; settings come in as values from the assembly, so no `config`.
    "webhooks": {"observability", "opencode", "primitives", "tasks"},
    "tools": {"auth", "config", "fleet", "observability", "opencode", "primitives", "tasks", "webhooks", "workspaces"},
    "edge": {"auth", "config", "fleet", "observability", "primitives"},
}
# The top level: entry points, the assembly, and secret_env, which must run before any
# package import (it may re-execute the process without the secrets in its environment).
TOP_LEVEL = {"__init__", "__main__", "cli", "app", "secret_env"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The gateway's modules that `name` imports, each resolved to a module (or package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith(PACKAGE):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found.update(subs or {target})
    return found & known - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _concern(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (SRC / parts[1]).is_dir() else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_in_a_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check itself works: a made-up graph with a circle is caught."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_imports_only_along_its_arrows() -> None:
    wrong = []
    for module, targets in _graph().items():
        concern = _concern(module)
        if concern is None:
            continue  # the entry points and the assembly import everything
        for target in targets:
            other = _concern(target)
            if other is None and target != PACKAGE:
                wrong.append(f"{module} imports the entry point {target}")
            elif other is not None and other != concern and other not in ALLOWED[concern]:
                wrong.append(f"{module} imports {target}: {concern} may import only {sorted(ALLOWED[concern])}")
    assert wrong == []


def test_the_top_level_holds_only_entry_points_and_packages() -> None:
    modules = {p.stem for p in SRC.glob("*.py")}
    assert modules == TOP_LEVEL
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(ALLOWED)


@pytest.mark.parametrize("concern", sorted(ALLOWED))
def test_each_package_says_what_it_does_and_what_it_may_import(concern: str) -> None:
    doc = ast.get_docstring(ast.parse((SRC / concern / "__init__.py").read_text()))
    assert doc, f"{concern}/__init__.py has no docstring"
    assert "Arrows:" in doc, f"{concern}/__init__.py does not say what it may import"


def _planned(target: str) -> str:
    """What `make TARGET` would run on a machine that has nothing yet (every step out of date)."""
    repo = SRC.parents[1]
    return subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", target],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_run_installs_only_what_running_needs() -> None:
    run = _planned("run")
    assert "requirements.lock" in run and "npm install" in run  # the runtime and OpenCode
    for only_for_tests in ("requirements-dev.lock", "helm", "oidc"):
        assert only_for_tests not in run
        assert only_for_tests in _planned("test")
