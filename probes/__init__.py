"""How to talk to a device: one module per probe, each registered under its ECC topic."""
