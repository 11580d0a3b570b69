"""nmap's flags that ``midprobe scan`` does not take, each answered with the midprobe way to say it.

The ones it does take (``-sS``, ``-sT``, ``-sV``, ``-O``, ``-Pn``, ``-T<n>``, ``-v``, ``-n``, ``-p``,
``-iL``) are ordinary options of the command; everything here is refused before click splits
``-sU`` into ``-s U`` and answers "No such option: -s".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import click

from midprobe.capabilities.errors import ConfigError

__all__ = ["NMAP_HINTS", "NmapFlagsCommand", "nmap_flag_hint"]

_OUTPUT = "midprobe writes one format at a time: --format table|json|ecc with -o FILE"

#: nmap flag -> what to type in midprobe instead (or why there is nothing).
NMAP_HINTS: Final[dict[str, str]] = {
    "-sU": "midprobe scan probes TCP only; SNMP (UDP 161) is asked with --snmp-public or --credentials",
    "-sn": "a ping sweep without port scans is its own command: midprobe sweep TARGETS",
    "-sP": "a ping sweep without port scans is its own command: midprobe sweep TARGETS",
    "-sC": "midprobe runs no nmap scripts; --nmap is version detection (-sV)",
    "-A": "use --nmap --os (version and OS detection)",
    "-F": "give the ports with -p (the default is Shazzam's discovery ports)",
    "--top-ports": "give the ports with -p (the default is Shazzam's discovery ports)",
    "--open": "midprobe reports only hosts that answered, with their open ports",
    "-oX": f"{_OUTPUT} (ecc is the ECC input payload XML, not nmap's XML)",
    "-oN": _OUTPUT,
    "-oG": _OUTPUT,
    "-oA": _OUTPUT,
    "-oS": _OUTPUT,
    "-6": "give IPv6 targets as they are (2001:db8::1, 2001:db8::/120)",
    "-R": "host names are looked up with --dns-server IP (or the system resolver); -n turns it off",
}

#: nmap's scan types midprobe has no engine for (``-sA``, ``-sF``, ...), answered alike.
_SCAN_TYPE_HINT: Final = "midprobe scans with SYN (-sS, --engine syn) or connect (-sT, --engine connect) only"


def nmap_flag_hint(argument: str) -> str | None:
    """The hint for an nmap flag midprobe does not take, ``None`` for anything else."""
    if argument in NMAP_HINTS:
        return NMAP_HINTS[argument]
    if len(argument) == 3 and argument.startswith("-s") and argument[2].isalpha():
        return _SCAN_TYPE_HINT
    return None


class NmapFlagsCommand(click.Command):
    """A command that answers nmap's flags it does not take with a one-line hint (exit status 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        own = {opt for param in self.params for opt in getattr(param, "opts", ())}
        for argument in _options_part(args):
            hint = None if argument in own else nmap_flag_hint(argument)
            if hint is not None:
                raise ConfigError(
                    f"nmap's {argument} is not a midprobe option: {hint}", source=ctx.command_path
                )
        return super().parse_args(ctx, args)


def _options_part(args: Sequence[str]) -> list[str]:
    """The arguments before a ``--`` (after it, everything is a target)."""
    arguments = list(args)
    return arguments[: arguments.index("--")] if "--" in arguments else arguments
