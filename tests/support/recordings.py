"""snmpsim-data's real-device recordings as varbinds, only the ones the project may use (odd positions)."""

from __future__ import annotations

from functools import cache

from midprobe.probes.snmp.values import VarBind
from midprobe.probes.snmp.walkfile import parse_snmprec
from midprobe.runner.lab.zoo import data_root, list_recordings, recording_text, used_recordings

MIB2_BRANCHES = ("1", "2", "4", "6", "17", "31", "43", "47")
#: The MIB-2, LLDP and CDP subtrees classification and exploration read (other lines are left out).
READ_SUBTREES = (
    *(f"1.3.6.1.2.1.{branch}." for branch in MIB2_BRANCHES),
    "1.0.8802.1.1.2.1.4.",
    "1.3.6.1.4.1.9.9.23.",
)


@cache
def recorded_varbinds(path: str) -> tuple[VarBind, ...]:
    """The recording at ``path`` (``network/switch/NAME.snmprec.bz2``) under ``READ_SUBTREES``.

    Refuses a held-out recording (an even position of its folder, sorted by name).
    """
    root = data_root()
    assert path in used_recordings(list_recordings(root)), f"{path} is held out"
    kept = "\n".join(
        line for line in recording_text(root, path).splitlines() if line.startswith(READ_SUBTREES)
    )
    return parse_snmprec(kept)
