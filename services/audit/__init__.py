"""Audit: the tamper-evident record of every action and read (built in its own issue)."""
