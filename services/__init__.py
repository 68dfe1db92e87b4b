"""Relais's services. Each is deployable alone; they never import each other."""
