"""What ``midprobe ecc enqueue`` checks before a request reaches the queue, so a typo fails at once.

The topic must be one a probe of the registry handles, and the source and parameters must pass that
probe's own parser (``probe.parse_params``, given what the agent gives it: ``probe_parameters``),
which must also have read every parameter given. Each refusal is a ``ConfigError`` naming the option, with "did you mean" when a
known name is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from midprobe.capabilities.errors import ConfigError, ProbeParameterError
from midprobe.probes.params import ReadTracker
from midprobe.probes.registry import ProbeRegistry
from midprobe.runner.agent.probe_runner import probe_parameters, runner_parameters

__all__ = ["check_request", "did_you_mean"]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'ports'?)`` for the closest of ``known`` (case ignored), else ``""``."""
    names = list(known)
    by_folded = {name.casefold(): name for name in names}
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean {by_folded[close[0]]!r}?)" if close else ""


def check_request(
    registry: ProbeRegistry, topic: str, name: str, source: str, parameters: Sequence[tuple[str, str]]
) -> None:
    """Refuse a request no probe of ``registry`` would run as meant (``ConfigError``, one line)."""
    if topic not in registry:
        topics = registry.topics()
        raise ConfigError(
            f"no probe handles topic {topic!r}{did_you_mean(topic, topics)}; known: {', '.join(topics)}",
            field="--topic",
        )
    probe = registry.get(topic)
    given = dict(parameters)
    tracker = ReadTracker(probe_parameters(name, given))
    try:
        probe.parse_params(source, tracker)
    except ProbeParameterError as error:
        field = "--source" if error.parameter == "source" else f"--param {error.parameter or ''}".rstrip()
        raise ConfigError(f"{topic} refuses the request: {error}", field=field) from None
    for unread in tracker.unread():
        if unread not in given:  # the record's name, which the probe may leave alone
            continue
        read = sorted(tracker.asked | runner_parameters(probe))
        hint = did_you_mean(unread, read) or f" (it reads {', '.join(read)})"
        raise ConfigError(f"{topic} has no parameter {unread!r}{hint}", field=f"--param {unread}")
