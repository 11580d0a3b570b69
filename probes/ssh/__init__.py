"""SSH discovery: the ``SSHCommand``, ``SSHClassify``, ``SSHIdentity`` and ``SSHExplore`` probes over paramiko.

``command`` and ``classify`` are probes with a ``PROBE``, ``explore`` holds discovery's
identification and exploration probes; under them the paramiko
layers: ``transport`` (connect, handshake, error translation), ``session`` (login),
``channel`` (one command, sudo) and ``pool`` (slots, thread pool, deadlines); ``replay``
replays recorded conversations through the channel layer; ``known_hosts`` the host key
stores, ``parsers`` the pure parsers of command output.
"""

from __future__ import annotations

from midprobe.probes.ssh.classify import PROBE as SSH_CLASSIFY_PROBE
from midprobe.probes.ssh.command import PROBE as SSH_COMMAND_PROBE
from midprobe.probes.ssh.explore import EXPLORE_PROBE as SSH_EXPLORE_PROBE
from midprobe.probes.ssh.explore import IDENTITY_PROBE as SSH_IDENTITY_PROBE

#: Every probe of this package, for the registry.
PROBES = (SSH_COMMAND_PROBE, SSH_CLASSIFY_PROBE, SSH_IDENTITY_PROBE, SSH_EXPLORE_PROBE)

__all__ = ["PROBES", "SSH_CLASSIFY_PROBE", "SSH_COMMAND_PROBE", "SSH_EXPLORE_PROBE", "SSH_IDENTITY_PROBE"]
