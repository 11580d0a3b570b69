"""SSH discovery: the ``SSHCommand`` and ``SSHClassify`` probes over paramiko, host keys, fact parsers.

``command`` and ``classify`` are the probes (each with a ``PROBE``); under them the paramiko
layers: ``transport`` (connect, handshake, error translation), ``session`` (login),
``channel`` (one command, sudo) and ``pool`` (slots, thread pool, deadlines); ``replay``
replays recorded conversations through the channel layer; ``known_hosts`` the host key
stores, ``parsers`` the pure parsers of command output.
"""

from __future__ import annotations

from midprobe.probes.ssh.classify import PROBE as SSH_CLASSIFY_PROBE
from midprobe.probes.ssh.command import PROBE as SSH_COMMAND_PROBE

#: Every probe of this package, for the registry.
PROBES = (SSH_COMMAND_PROBE, SSH_CLASSIFY_PROBE)

__all__ = ["PROBES", "SSH_CLASSIFY_PROBE", "SSH_COMMAND_PROBE"]
