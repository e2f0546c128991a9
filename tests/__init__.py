"""The swm-jupyter test suite."""
