"""The shape of the code: who imports whom, and who writes a run's status.

Pure source checks (no database): they read the project's files with ``ast``.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "scheduler_app", "workers")
# Django loads these after the apps are ready: the one place a deferred import belongs.
DEFERRED_IMPORTS_ALLOWED = {"scheduler_app.apps"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                files[module_name(path)] = path
    return files


FILES = project_files()


def imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The project modules an import statement loads (``from pkg import mod`` is ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's own package, up level - 1
            package = module.split(".")
            if FILES[module].name != "__init__.py":
                package.pop()
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in FILES else base for a in node.names]
    return sorted({name for name in names if name.split(".")[0] in PACKAGES})


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(project modules imported at module level, those imported inside a function)."""
    tree = ast.parse(FILES[module].read_text())
    top: set[str] = set()
    deferred: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                (deferred if in_function else top).update(imported(child, module))
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, nested)

    visit(tree, False)
    top.discard(module)
    return top, deferred


GRAPH = {module: imports_of(module) for module in FILES}


def test_no_project_module_is_imported_inside_a_function():
    deferred = {
        module: sorted(inner)
        for module, (_, inner) in GRAPH.items()
        if inner and module not in DEFERRED_IMPORTS_ALLOWED
    }
    assert deferred == {}


def test_the_import_graph_has_no_cycle():
    sorter = graphlib.TopologicalSorter({module: top for module, (top, _) in GRAPH.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_scheduler_app_never_imports_workers():
    """Workers depend on the app; the app sends them tasks by name (dispatch.py)."""
    upward = {
        module: sorted(name for name in top if name.startswith("workers"))
        for module, (top, deferred) in GRAPH.items()
        if module.startswith("scheduler_app")
        for top in [top | deferred]
    }
    assert {module: names for module, names in upward.items() if names} == {}


def status_writes(module: str) -> list[int]:
    """Lines that set a run's ``status`` field: ``status=`` in a call to update(),
    create(), save() and the like, or an assignment to ``<x>.status``."""
    tree = ast.parse(FILES[module].read_text())
    writes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            writing = node.func.attr in {"update", "create", "get_or_create", "update_or_create",
                                         "bulk_create", "bulk_update"}  # fmt: skip
            if writing and any(k.arg == "status" for k in node.keywords):
                writes.append(node.lineno)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            flat = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in flat):
                writes.append(node.lineno)
    return writes


def test_only_runs_py_writes_a_run_status():
    writers = {module: lines for module in FILES if (lines := status_writes(module))}
    assert set(writers) == {"scheduler_app.runs"}, writers


CLI = "scheduler_app.cli"
# What the command line must not load: it runs on machines that reach only the API.
SERVER_SIDE = {
    "django",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "redbeat",
    "redis",
    "config",
    "workers",
}


def all_imports(module: str) -> set[str]:
    """Every module an import statement of ``module`` names, at any depth of the code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(FILES[module].read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(imported(node, module) or [node.module or ""])
    return names


def test_the_cli_imports_nothing_of_the_server():
    """``schedule`` speaks only the REST API: no Django, no other scheduler_app module."""
    offending = {
        module: sorted(
            name
            for name in all_imports(module)
            if name.split(".")[0] in SERVER_SIDE
            or (name.startswith("scheduler_app") and not name.startswith(CLI))
        )
        for module in FILES
        if module == CLI or module.startswith(CLI + ".")
    }
    assert len(offending) > 5  # the CLI's modules were found
    assert {module: names for module, names in offending.items() if names} == {}


def test_loading_the_cli_loads_nothing_of_the_server():
    """The same, as Python sees it: scheduler_app/__init__.py included."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, scheduler_app.cli.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    top = set(ast.literal_eval(loaded))
    assert "click" in top and top & SERVER_SIDE == set()
