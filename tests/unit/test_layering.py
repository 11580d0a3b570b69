"""The folders are the architecture: ``capabilities`` imports no other midprobe package, ``probes`` not ``runner``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What each package may not import, by top-level midprobe package name.
FORBIDDEN = {
    "capabilities": ("midprobe.probes", "midprobe.runner"),
    "probes": ("midprobe.runner",),
}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module an import statement names, with its line (including imports inside functions)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions_and_from_forms() -> None:
    source = "def f():\n    import midprobe.runner.cli\nfrom midprobe import runner\n"
    modules = [module for _, module in imported_modules(source)]
    assert "midprobe.runner.cli" in modules
    assert "midprobe.runner" in modules
