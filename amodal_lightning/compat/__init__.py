"""Compatibility with the SAS reference code: flags, checkpoints and key names."""
