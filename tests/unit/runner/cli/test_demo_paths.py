"""The demo prints its files as the user would type them from where they ran it."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.cli.demo import _shown


def test_a_file_below_the_current_folder_is_shown_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _shown(tmp_path / "demo-output" / "ecc-tls" / "ca.pem") == "demo-output/ecc-tls/ca.pem"


def test_a_file_elsewhere_keeps_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert _shown(tmp_path / "there" / "ca.pem") == str(tmp_path / "there" / "ca.pem")
