"""BannerSniff's default waits, which a Shazzam request's readers (BannerTCP, the SNMP tap) share.

Apart from ``parsers`` so that the port scan (``probes/shazzam.py``) knows them without loading
BannerSniff itself: a scan that reads no banner never imports its parsers, sniffer and probe.
"""

from __future__ import annotations

DEFAULT_BANNER_WAIT_MS = 1500  # Shazzam BannerTCP
DEFAULT_SNMP_WAIT_MS = 1000  # Shazzam SNMP
DEFAULT_SNMP_TAPS = 2

__all__ = ["DEFAULT_BANNER_WAIT_MS", "DEFAULT_SNMP_TAPS", "DEFAULT_SNMP_WAIT_MS"]
