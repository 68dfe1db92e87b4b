"""The directory: member organisations, and the links between their nodes."""
