"""``midprobe agent ... --self-test``: whether this installation can run this MID, without running it.

It imports every midprobe module, checks the agent's configuration as the agent would, and reaches
the queue (for an instance: logged in as the MID's user). An upgrade runs it in the new version
before restarting into it (:mod:`midprobe.runner.agent.upgrade`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from midprobe.capabilities.errors import MidprobeError
from midprobe.runner.agent.config import AgentConfig
from midprobe.runner.queue.lifecycle import midprobe_version

PACKAGES = ("midprobe.capabilities", "midprobe.probes", "midprobe.runner")


class SelfTestFailed(MidprobeError):
    """The self-test found this installation unable to run the MID."""


def import_everything() -> int:
    """Import every midprobe module (not ``__main__``s); how many. ``SelfTestFailed`` naming the first that fails."""
    count = 0
    for package_name in PACKAGES:
        try:
            package = importlib.import_module(package_name)
            names = [
                found.name
                for found in pkgutil.walk_packages(package.__path__, package_name + ".")
                if not found.name.endswith(".__main__")
            ]
        except Exception as error:  # whatever an import raises, the self-test reports it
            raise SelfTestFailed(f"{package_name} does not import: {type(error).__name__}: {error}") from None
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as error:
                raise SelfTestFailed(f"{name} does not import: {type(error).__name__}: {error}") from None
            count += 1
    return count


def self_test(config: AgentConfig, check: Callable[[AgentConfig], object]) -> str:
    """Run the checks (``check``: the agent's own of its configuration); the one line ``--self-test`` prints.

    Any failure raises a ``MidprobeError``.
    """
    from midprobe.runner.queue.url import open_queue

    modules = import_everything()
    check(config)
    with open_queue(config.queue_url, **config.instance_login()) as queue:
        queue.get_agent(config.name)  # logged in, and the MID's own registration readable
    return f"self-test passed: midprobe {midprobe_version()}, {modules} modules, queue {queue.url} reached"


__all__ = ["PACKAGES", "SelfTestFailed", "import_everything", "self_test"]
