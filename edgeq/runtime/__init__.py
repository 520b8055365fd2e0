"""The bottom layer: runtime sessions with a target's providers, feeds, and the one timing loop."""
