"""JupyterHub's configuration for tests/hub: a classroom hub as The Littlest JupyterHub sets one up.

Read by ``jupyterhub -f`` as root; run.sh passes what changes per run in ``HUB_TEST_*``
variables. PAM logs the local learners in; each learner's server is ``jupyterhub-singleuser``
from the one workshop environment, started by LocalProcessSpawner as that user (TLJH uses
SystemdSpawner, which needs systemd: this container has none). Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821 -- provided by traitlets

run = os.environ["HUB_TEST_RUN"]
venv = os.environ["HUB_TEST_VENV"]
learners = set(os.environ["HUB_TEST_LEARNERS"].split(","))

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["HUB_TEST_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["HUB_TEST_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['HUB_TEST_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["HUB_TEST_CHP"]]
c.JupyterHub.db_url = f"sqlite:///{run}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{run}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{run}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = learners
c.PAMAuthenticator.open_sessions = False  # no systemd-logind here to open them with

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [f"{venv}/bin/jupyterhub-singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# As CI runs the lessons (nbval's quick mode, servers required), at the size Binder uses.
c.Spawner.environment = {
    "PERFLAB_STRICT": "1",
    "PERFLAB_QUICK": "1",
    "PERFLAB_SCALE": "small",
    "PYTHONDONTWRITEBYTECODE": "1",
}
