"""Configuration of the hub's swm service (loaded by ``python -m swm_jupyter.hub.service --config=...``).

Sites are configured as for a standalone server (docs/configuration.md). Here every job runs under
the OS account of the hub user who submitted it (``run_as_owner``), queued jobs of different users
take turns by fair share, and no user may take every slot. docs/jupyterhub.md explains each line and
shows how to add a Slurm site.
"""

c = get_config()  # noqa: F821 - provided by the Jupyter server when it loads this file

c.SwmApp.sites = {
    # this host: each user's jobs run as that user (one local supervisor per account), in ~/.swm/jobs/<id>
    "local": {"gate": "local", "run_as_owner": True},
    # a Slurm cluster whose commands work on this host, jobs submitted as their owners (docs/jupyterhub.md):
    # "cluster": {"gate": "slurm", "run_as_owner": True, "partition": "batch", "max_running": 100},
}
# between users: the one who used least cpu time lately goes first; one user's jobs never fill a site
c.SwmApp.scheduling_policy = "fairshare"
c.SwmApp.max_running_per_user = 8
c.SwmApp.max_queued_per_user = 1000
