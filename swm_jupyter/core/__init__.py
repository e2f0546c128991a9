"""The workload-manager core: jobs, states, the store and the scheduler (no Jupyter imports)."""
