"""Notifications: who is told what, by which channel (built in its own issue)."""
