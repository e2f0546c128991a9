"""A JupyterHub with Sky Port: the swm service, the idle culler, and the demo users alice, bob and admin.

Run it as root (the hub starts each user's server as that user) from the environment where
swm-jupyter is installed, after ``create-users.sh`` beside this file::

    jupyterhub -f jupyter-config/jupyterhub/jupyterhub_config.py

Every line is explained in docs/jupyterhub.md. ``SWM_HUB_DIR`` (default ``/srv/swm-hub``) holds the
hub's database, its cookie secret and the swm service's job store.
"""

import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

here = Path(__file__).resolve().parent
bin_dir = Path(sys.executable).parent  # the environment JupyterHub runs from (and swm-jupyter is in)
state_dir = Path(os.environ.get("SWM_HUB_DIR", "/srv/swm-hub"))
state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

# -- the hub ----------------------------------------------------------------------------------------
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
proxy = bin_dir / "configurable-http-proxy"  # where .ci/setup.sh installs it (npm --prefix <venv>)
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists() else shutil.which("configurable-http-proxy") or str(proxy)]

# -- users: PAM accounts made by create-users.sh; admin is a hub admin ------------------------------
c.Authenticator.allowed_users = {"alice", "bob"}
c.Authenticator.admin_users = {"admin"}

# -- each user's server: JupyterLab from this environment, as that user -----------------------------
c.Spawner.cmd = [str(bin_dir / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
# the server's own token may call the swm service as its user (and, for admins, as an swm admin)
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=swm",
    "read:services!service=swm",
    "custom:swm:jobs!user",
    "custom:swm:admin",
]

# -- scopes and roles -------------------------------------------------------------------------------
c.JupyterHub.custom_scopes = {
    "custom:swm:jobs": {"description": "Submit, see and act on your own swm jobs."},
    "custom:swm:admin": {"description": "See and act on every user's swm jobs and sites."},
}
c.JupyterHub.load_roles = [
    {
        "name": "user",
        "description": "Standard user privileges, with swm jobs of their own",
        "scopes": ["self", "access:services!service=swm", "read:services!service=swm", "custom:swm:jobs!user"],
    },
    {"name": "swm-admin", "description": "Every user's swm jobs", "scopes": ["custom:swm:admin"], "users": ["admin"]},
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    },
]

# -- services: swm (one core for every user) and the idle culler ------------------------------------
c.JupyterHub.services = [
    {
        "name": "swm",
        "url": "http://127.0.0.1:10101",
        "command": [
            sys.executable,
            "-m",
            "swm_jupyter.hub.service",
            f"--config={here / 'swm_service_config.py'}",
            f"--SwmApp.data_dir={state_dir / 'swm'}",
        ],
        "cwd": str(state_dir),
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": ["custom:swm:jobs!user", "custom:swm:admin"],
        "display": False,
    },
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"],
    },
]
