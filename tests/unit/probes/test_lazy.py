"""Packages whose names load from their submodules on first use (``probes/lazy.py``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Each lazy package, one of its names, and the submodule that name loads.
LAZY_PACKAGES = (
    ("midprobe.probes.banner", "PROBES", "midprobe.probes.banner.probe"),
    ("midprobe.probes.credentials", "CredentialStore", "midprobe.probes.credentials.store"),
    ("midprobe.runner.queue", "open_queue", "midprobe.runner.queue.url"),
)


@pytest.mark.parametrize(("package", "name", "submodule"), LAZY_PACKAGES)
def test_a_name_loads_its_submodule_only_when_first_read(package: str, name: str, submodule: str) -> None:
    script = (
        "import importlib, sys\n"
        f"package = importlib.import_module({package!r})\n"
        f"before = {submodule!r} in sys.modules\n"
        f"value = getattr(package, {name!r})\n"
        f"print(before, {submodule!r} in sys.modules, value is getattr(sys.modules[{submodule!r}], {name!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "True", "True"]


def test_a_name_the_package_does_not_have_is_an_attribute_error_naming_it() -> None:
    from midprobe.probes import banner

    with pytest.raises(AttributeError, match=r"module 'midprobe\.probes\.banner' has no attribute 'Banner'"):
        banner.Banner  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        from midprobe.probes.banner import Banner  # type: ignore[attr-defined]  # noqa: F401
