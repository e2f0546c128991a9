"""Standalone daemons that gates start as processes of their own (not imported by the server)."""
