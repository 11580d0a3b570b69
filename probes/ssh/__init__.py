"""SSH discovery: the ``SSHCommand`` and ``SSHClassify`` probes over paramiko, host keys, fact parsers.

``command`` and ``classify`` are the probes (each with a ``PROBE``), ``session`` the
bounded paramiko layer, ``known_hosts`` the host key stores, ``parsers`` the pure
parsers of command output.
"""
