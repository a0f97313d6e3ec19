"""A fresh install has what the code imports: every third-party import is declared directly."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ["models", "services", "schema", "resolvers", "web", "migrations", "parley.py"]


def _declared(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for the type checker only)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.If)
                and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"
            ):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return out


def _imports(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _files(entries: list[str]) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        path = ROOT / entry
        out.extend(path.rglob("*.py") if path.is_dir() else [path])
    return out


def _undeclared(entries: list[str], declared: set[str]) -> list[str]:
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | {p.stem for p in ROOT.glob("*.py")}
    owners = md.packages_distributions()
    missing = []
    for module, path in sorted(_imports(_files(entries)).items()):
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & declared:
            missing.append(
                f"{module} (imported by {path.relative_to(ROOT)}; installed by {sorted(dists) or 'nothing'})"
            )
    return missing


def test_the_service_declares_what_it_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _undeclared(SOURCE, _declared(project["dependencies"])) == []


def test_the_tests_declare_what_they_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert _undeclared(["tests"], declared) == []
