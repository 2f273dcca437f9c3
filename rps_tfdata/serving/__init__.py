"""Serving a finished run."""
