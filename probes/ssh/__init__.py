"""SSH discovery: the ``SSHCommand`` and ``SSHClassify`` probes over paramiko, host keys, fact parsers.

``command`` and ``classify`` are the probes (each with a ``PROBE``); under them the paramiko
layers: ``transport`` (connect, handshake, error translation), ``session`` (login),
``channel`` (one command, sudo) and ``pool`` (slots, thread pool, deadlines); ``replay``
replays recorded conversations through the channel layer; ``known_hosts`` the host key
stores, ``parsers`` the pure parsers of command output.
"""
