"""The job that SwmSpawner submits: start a user's ``jupyterhub-singleuser`` on a free port and say where.

Runs on the compute side (``python -m swm_jupyter.hub.server_job --ip IP -- jupyterhub-singleuser ...``)
as the swm job of a hub user's server. It

1. keeps of the ``JUPYTERHUB_*`` and ``JPY_*`` variables only those the spawner set
   (``SWM_SPAWNER_ENV``, their names), so nothing of the swm service's own hub identity leaks in;
2. refuses to start without the server's hub token (it reaches the job through the job's
   ``private_env``: the process's environment only, never a file or the job record), and as root
   unless ``SWM_SPAWNER_ALLOW_ROOT=1``;
3. picks a free port (the OS chooses it: bind port 0), points ``JUPYTERHUB_SERVICE_URL`` at it and
   starts the server (a few times, with a new port, if another process took the port meanwhile);
4. once the server accepts connections, prints one line ``swm-spawner-ready {"host": ..., "port": ...}``
   to its stdout, which the spawner reads through the swm service's job log;
5. passes SIGTERM/SIGINT on to the server and exits with its exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import MutableMapping
from urllib.parse import urlparse, urlunparse

#: The marker of the line that tells the spawner where the server listens.
READY_MARKER = "swm-spawner-ready"
#: Variables (patterns by prefix) of a hub identity: only those named in SWM_SPAWNER_ENV are kept.
HUB_PREFIXES = ("JUPYTERHUB_", "JPY_")
#: Exit status when the job cannot start the server at all (the reason is on stderr).
EXIT_CANNOT_START = 3
#: How many times a port taken by another process between our choice and the server's bind is retried.
PORT_ATTEMPTS = 3


def keep_spawner_env(environ: MutableMapping[str, str]) -> None:
    """Drop every ``JUPYTERHUB_*``/``JPY_*`` variable that the spawner did not name in ``SWM_SPAWNER_ENV``."""
    wanted = set(filter(None, environ.get("SWM_SPAWNER_ENV", "").split(",")))
    for name in [n for n in environ if n.startswith(HUB_PREFIXES) and n not in wanted]:
        del environ[name]


def free_port(ip: str) -> int:
    """A port that is free on ``ip`` now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def service_url(template: str, ip: str, port: int) -> str:
    """``JUPYTERHUB_SERVICE_URL`` (scheme and path from the spawner) with this host and port."""
    parts = urlparse(template or "http://127.0.0.1/")
    host = f"[{ip}]" if ":" in ip else ip
    return urlunparse(parts._replace(netloc=f"{host}:{port}"))


def reported_host(ip: str, report_host: str) -> str:
    """The host name the hub's proxy should use: ``report_host``, else ``ip``, else this host's name."""
    if report_host:
        return report_host
    if ip in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return ip


def accepting(ip: str, port: int) -> bool:
    """True once something accepts TCP connections on ``ip:port``."""
    target = "127.0.0.1" if ip in ("", "0.0.0.0") else ("::1" if ip == "::" else ip)
    try:
        with socket.create_connection((target, port), timeout=1):
            return True
    except OSError:
        return False


def home_folder() -> str | None:
    """The user's home folder if it exists (the server's working folder), else None (stay in the job folder)."""
    home = os.path.expanduser("~")
    return home if os.path.isdir(home) else None


def fail(message: str) -> int:
    """Print why the server cannot start (the spawner shows stderr's last lines) and return the exit status."""
    print(f"swm spawner: {message}", file=sys.stderr, flush=True)
    return EXIT_CANNOT_START


def run(argv: list[str] | None = None) -> int:
    """Start the server and wait for it; return its exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m swm_jupyter.hub.server_job")
    parser.add_argument("--ip", default="127.0.0.1", help="the address the server listens on")
    parser.add_argument("--report-host", default="", help="the host name the hub reaches the server by")
    parser.add_argument(
        "--fast-start", action="store_true", help="start the server without its needless slow imports (fast_start)"
    )
    parser.add_argument(
        "--in-job-folder", action="store_true", help="serve the job folder (staged files), not the home folder"
    )
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds for the server to listen")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- jupyterhub-singleuser [args]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        return fail("no server command given")
    env = os.environ
    keep_spawner_env(env)
    if not env.get("JUPYTERHUB_API_TOKEN"):
        return fail(
            "the server's hub token did not reach this job (the swm service restarted before the job "
            "started, or the site cannot pass private variables); start the server again"
        )
    if os.geteuid() == 0 and env.get("SWM_SPAWNER_ALLOW_ROOT") != "1":
        return fail(
            f"refusing to run {env.get('JUPYTERHUB_USER', 'a user')}'s server as root: run the swm service's "
            "jobs as their owners (run_as_owner), or set SwmSpawner.allow_root (tests only)"
        )
    template = env.get("JUPYTERHUB_SERVICE_URL", "")
    server: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if server is not None and server.poll() is None:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port(args.ip)
        env["JUPYTERHUB_SERVICE_URL"] = service_url(template, args.ip, port)
        extra = ["--allow-root"] if os.geteuid() == 0 else []
        cwd = None if args.in_job_folder else home_folder()
        launcher = [sys.executable, "-m", "swm_jupyter.hub.fast_start"] if args.fast_start else []
        server = subprocess.Popen([*launcher, *command, *extra], env=dict(env), cwd=cwd)
        deadline = time.monotonic() + args.start_timeout
        while server.poll() is None and not accepting(args.ip, port):
            if time.monotonic() > deadline:
                server.terminate()
                server.wait()
                return fail(f"the server did not listen within {args.start_timeout:.0f} s")
            time.sleep(0.1)
        if server.poll() is None:
            ready = {"host": reported_host(args.ip, args.report_host), "port": port}
            print(f"{READY_MARKER} {json.dumps(ready)}", flush=True)
            return server.wait()
        if not port_in_use(args.ip, port):  # it failed for a reason of its own, not a lost port race
            return server.returncode
    return server.returncode if server is not None else EXIT_CANNOT_START


def port_in_use(ip: str, port: int) -> bool:
    """True if ``port`` on ``ip`` is in use now (the server exited because another process took it)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return True
    return False


def main() -> None:
    """Entry point: exit with the server's status."""
    raise SystemExit(run())


if __name__ == "__main__":
    main()
