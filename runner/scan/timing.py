"""nmap's timing templates (``-T0``..``-T5``) as the knobs midprobe's port scan has.

midprobe's engines have no scan delay or parallelism templates of their own; a template sets the
three knobs they do have (the per-port wait, the retries and the probe rate), each of which an
explicit ``--wait``, ``--retries`` or ``--rate`` overrides. The values follow nmap's templates:
T0-T2 space probes out (nmap's scan delay as a rate), T3 is midprobe's default, T4 and T5 wait less
for an answer (nmap's initial RTT timeout) and T5 retries less.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["DEFAULT_TIMING", "TIMING_CHOICES", "TimingTemplate", "timing_template"]


@dataclass(frozen=True)
class TimingTemplate:
    """One ``-T`` level: what it sets when the option itself is not given."""

    level: int
    name: str
    #: ``--wait``: the longest wait for one port's answer, in milliseconds.
    wait_ms: int
    #: ``--retries``: probes resent to a port that did not answer.
    retries: int
    #: ``--rate``: port probes per second, ``None`` = unlimited.
    rate: float | None

    def overridden(self, *, wait_ms: int | None, retries: int | None, rate: float | None) -> TimingTemplate:
        """The knobs the scan runs with: each one given on the command line wins over the template's."""
        return replace(
            self,
            wait_ms=self.wait_ms if wait_ms is None else wait_ms,
            retries=self.retries if retries is None else retries,
            rate=self.rate if rate is None else rate,
        )

    def describe(self) -> str:
        rate = "no rate limit" if self.rate is None else f"at most {self.rate:g} probes/s"
        return f"T{self.level} {self.name} (wait {self.wait_ms} ms, {self.retries} retries, {rate})"


TEMPLATES: Final = (
    TimingTemplate(0, "paranoid", 60_000, 2, 1 / 300),  # nmap: 5 minutes between probes
    TimingTemplate(1, "sneaky", 15_000, 2, 1 / 15),  # nmap: 15 s between probes
    TimingTemplate(2, "polite", 1_000, 2, 2.5),  # nmap: 0.4 s between probes
    TimingTemplate(3, "normal", 1_000, 2, None),  # midprobe's defaults
    TimingTemplate(4, "aggressive", 500, 2, None),  # nmap: initial RTT timeout 500 ms
    TimingTemplate(5, "insane", 250, 1, None),  # nmap: initial RTT timeout 250 ms, fewer retries
)

DEFAULT_TIMING: Final = TEMPLATES[3]

#: What ``-T`` accepts: the level (``4``) or nmap's name for it (``aggressive``).
TIMING_CHOICES: Final = tuple(str(t.level) for t in TEMPLATES) + tuple(t.name for t in TEMPLATES)


def timing_template(choice: str | None) -> TimingTemplate:
    """The template named by a ``-T`` value (one of ``TIMING_CHOICES``); ``None`` = T3."""
    if choice is None:
        return DEFAULT_TIMING
    for template in TEMPLATES:
        if choice in (str(template.level), template.name):
            return template
    raise ValueError(f"no timing template {choice!r}")
