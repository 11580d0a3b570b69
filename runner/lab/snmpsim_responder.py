"""snmpsim's command responder, keeping every device's data file open (the zoo daemon runs it).

snmpsim keeps at most 32 data files open and closes the oldest to open another; reopening a
large recording's index (a ``dbm.dumb`` file: read whole on open) takes seconds, past any SNMP
timeout. The zoo serves one data file per device, so each stays open once it was opened.
Run as ``python -m midprobe.runner.lab.snmpsim_responder ARGS`` (``snmpsim-command-responder``'s).
"""

from __future__ import annotations

import sys

from snmpsim import datafile  # type: ignore[import-untyped]
from snmpsim.commands import responder  # type: ignore[import-untyped]

#: Data files snmpsim keeps open at once (its own default is 31).
OPEN_DATA_FILES = 1024


def main() -> int:
    datafile.DataFile.max_queue_entries = OPEN_DATA_FILES
    status = responder.main()
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
