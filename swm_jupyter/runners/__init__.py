"""Programs that run inside a job on a site (e.g. the headless notebook runner)."""
