"""Callbacks for what Lightning does not already provide."""
