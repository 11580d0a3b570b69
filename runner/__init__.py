"""Moves work and results: ECC records, the queue, the agent daemon, the lab and the CLI."""
