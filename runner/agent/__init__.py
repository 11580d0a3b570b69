"""The agent daemon (the MID Server's half): claiming, the probe runner, identity, limits, config, logs."""
