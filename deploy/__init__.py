"""Running Relais: the launcher of real servers and service processes, node assembly, the CLI."""
