"""midprobe's own version, read from its installed metadata without importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from midprobe.runner.queue import lifecycle


def test_the_version_is_the_one_importlib_metadata_reads() -> None:
    assert lifecycle._dist_info_version() == importlib.metadata.version("midprobe")


def test_the_first_dist_info_on_the_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "midprobe-7.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: midprobe\nVersion: 7.3.1\n\nText\n")
    (tmp_path / "midprobe_extras-1.0.dist-info").mkdir()  # another project (midprobe-extras)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing.zip"), str(tmp_path), *sys.path])
    assert lifecycle._dist_info_version() == "7.3.1"
