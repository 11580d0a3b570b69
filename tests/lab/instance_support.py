"""``midprobe instance serve`` as a process in the lab's scanner namespace, for the lab tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.lab import Lab


def serve_instance(lab: Lab, url: str, listen: str, *extra: str) -> tuple[subprocess.Popen[str], str, Path]:
    """Start the instance on ``listen`` (with ``extra`` options); returns the process, the URL it printed, and its CA file."""
    argv = ["ip", "netns", "exec", lab.scanner_namespace, sys.executable, "-m", "midprobe.runner"]
    argv += ["instance", "serve", "--queue", url, "--listen", listen, *extra]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    ca_line = process.stdout.readline().strip()
    host = listen.rpartition(":")[0]
    if not base.startswith(f"https://{host}:") or not ca_line.startswith("CA: "):
        process.kill()
        pytest.fail(f"instance serve did not start: {base!r} {ca_line!r} {process.communicate()[1][-2000:]}")
    return process, base, Path(ca_line.removeprefix("CA: "))
