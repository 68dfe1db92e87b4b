"""Relais's shared library: the contracts and plumbing every service uses, and nothing else."""
