"""Benchmarks: figures about the real servers, not tests. Run with ``python -m tests.bench``."""
