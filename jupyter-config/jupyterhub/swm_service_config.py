"""Configuration of the hub's swm service (loaded by ``python -m swm_jupyter.hub.service --config=...``).

Sites are configured as for a standalone server (docs/configuration.md); docs/jupyterhub.md shows
how to add a Slurm site.
"""

c = get_config()  # noqa: F821 - provided by the Jupyter server when it loads this file

c.SwmApp.sites = {
    "local": {"gate": "local", "max_running": 4},
    # "cluster": {"gate": "slurm", "ssh_host": "login.hpc.example.org", "max_running": 100},
}
