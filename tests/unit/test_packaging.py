"""The three code folders install as midprobe.* and every tool sees the same modules."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"capabilities": "midprobe.capabilities", "probes": "midprobe.probes", "runner": "midprobe.runner"}


def _source_packages() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    return found


def _source_modules() -> set[str]:
    modules = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            modules.add(".".join([package, *parts]))
    return modules


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = _source_packages() - listed
    assert not missing, f"packages missing from pyproject.toml: {sorted(missing)}"


def test_every_module_imports_under_the_midprobe_namespace() -> None:
    for name in sorted(_source_modules()):
        if name.endswith(".__main__"):  # importing it runs the CLI; its file is checked by the wheel test
            continue
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert Path(module.__file__).resolve().is_relative_to(ROOT), name


def test_nothing_generic_is_importable_at_top_level() -> None:
    for generic in FOLDERS:
        spec = importlib.util.find_spec(generic)
        assert spec is None or (spec.origin and "site-packages" not in spec.origin), generic


@pytest.mark.timeout(300)
def test_wheel_holds_the_same_modules(tmp_path: Path) -> None:
    # Build from a copy of the tree: setuptools reuses ./build, where modules deleted since
    # an earlier build would still be found.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "demo-output"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("midprobe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    in_wheel = {
        name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for name in names
        if name.endswith(".py")
    }
    assert in_wheel == _source_modules()
    assert not any(name.split("/")[0] in FOLDERS for name in names), "a generic top-level package leaked"
    assert any(name.endswith("midprobe/runner/py.typed") for name in names)
