"""The SAM dataset builder (paper §4.1)."""
