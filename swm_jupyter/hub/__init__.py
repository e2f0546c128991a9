"""swm-jupyter on a JupyterHub: the hub-managed service, hub authentication, and client mode.

- :mod:`.service`: the process the hub starts (``python -m swm_jupyter.hub.service``), a Jupyter
  server running the swm extension for every user of the hub;
- :mod:`.identity`: who a request comes from (hub tokens and the hub's OAuth) and what they may do
  (the ``custom:swm:jobs`` and ``custom:swm:admin`` scopes);
- :mod:`.client_mode`: in each user's single-user server, the extension forwards its API to the
  service instead of running a core of its own.

Importing :mod:`.identity` or :mod:`.service` needs the ``jupyterhub`` package (extra ``hub``).
"""

#: The custom scope that lets a hub user see and act on their own jobs.
JOBS_SCOPE = "custom:swm:jobs"
#: The custom scope that lets a hub user see and act on every user's jobs.
ADMIN_SCOPE = "custom:swm:admin"
#: The name of the service in ``c.JupyterHub.services`` unless configured otherwise.
SERVICE_NAME = "swm"
