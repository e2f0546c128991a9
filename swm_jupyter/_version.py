"""The version of swm-jupyter."""

__version__ = "0.1.0"
