"""Find the swm server to talk to, from the environment or Jupyter's runtime files.

:func:`find_server` answers ``(base_url, token)``: ``SWM_URL`` / ``SWM_TOKEN`` if set, otherwise the
Jupyter server this process belongs to (a kernel's parent), else the running server whose root
folder holds the current folder, else the newest one. Running servers are read from the
``jpserver-*.json`` files of Jupyter's runtime folder directly (``jupyter_server.serverapp`` takes
seconds to import, which a command line cannot afford).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServerNotFound, SwmError

API_PATH = "swm/api/v1"


def check_base_url(url: str, source: str = "the server URL") -> str:
    """``url`` if it is an ``http(s)://host[:port][/base/]`` address; else :class:`ServerNotFound` saying so.

    ``source`` names where the URL came from (``SWM_URL``, ``--url``) in the message.
    """
    example = "write it like http://127.0.0.1:8888/ (the Jupyter server's address and base path)"
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError as exc:
        raise ServerNotFound(f"{source} {url!r} is not a URL ({exc}): {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ServerNotFound(f"{source} {url!r} is not an http:// or https:// URL: {example}")
    return url


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` exists (another user's process counts; always True where it cannot be told)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - signal 0 means CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_servers(runtime_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The records of the running Jupyter servers (their ``jpserver-*.json`` files), oldest first.

    ``runtime_dir`` defaults to Jupyter's (``JUPYTER_RUNTIME_DIR``, else the data folder's ``runtime``).
    A file being written, unreadable, or left behind by a server that is gone is skipped (not deleted).
    """
    if runtime_dir is None:
        runtime_dir = _runtime_dir()
    found: list[tuple[float, dict[str, Any]]] = []
    try:
        files = list(Path(runtime_dir).glob("jpserver-*.json"))
    except OSError:
        return []
    for path in files:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            written = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("url") and _alive(info.get("pid")):
            info["runtime_file"] = str(path)
            found.append((written, info))
    found.sort(key=lambda pair: pair[0])
    return [info for _, info in found]


@dataclass
class Located:
    """A server found by :func:`locate_server`: its base URL, the token, and where the token came from."""

    base_url: str
    token: str | None
    #: Where the token came from, for messages: ``"SWM_TOKEN"``, ``"the runtime file PATH"``, or ``""`` (none).
    token_source: str = ""


def _runtime_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir

    return str(jupyter_runtime_dir())


def locate_server() -> Located:
    """Find the swm server to talk to (see the module docstring). Raises :class:`ServerNotFound` naming
    the places looked at."""
    env_token = os.environ.get("SWM_TOKEN") or None
    url = os.environ.get("SWM_URL")
    if url:
        url = check_base_url(url.strip(), "SWM_URL").rstrip("/")
        if url.endswith("/" + API_PATH):
            url = url[: -len(API_PATH) - 1]
        return Located(url + "/", env_token, "SWM_TOKEN" if env_token else "")
    runtime_dir = _runtime_dir()
    servers = running_servers(runtime_dir)
    if not servers:
        raise ServerNotFound(
            "no running Jupyter server found (looked at: SWM_URL, not set; the runtime files "
            f"{os.path.join(runtime_dir, 'jpserver-*.json')}, none of a running server): start one "
            "(jupyter lab / jupyter server), or set SWM_URL and SWM_TOKEN"
        )
    chosen = _choose(servers, parent_pid=os.getppid(), cwd=Path.cwd())
    base_url = str(chosen["url"]).rstrip("/") + "/"
    if env_token:
        return Located(base_url, env_token, "SWM_TOKEN")
    token = chosen.get("token") or None
    source = f"the runtime file {chosen.get('runtime_file', runtime_dir)}" if token else ""
    return Located(base_url, token, source)


def find_server() -> tuple[str, str | None]:
    """Return ``(base_url, token)`` of the swm server to talk to. Raises :class:`ServerNotFound`.

    ``base_url`` is the Jupyter server's URL with its base path and a trailing slash
    (``http://127.0.0.1:8888/``); the API is at ``base_url + "swm/api/v1/"``.
    """
    found = locate_server()
    return found.base_url, found.token


def _choose(servers: list[dict[str, Any]], *, parent_pid: int, cwd: Path) -> dict[str, Any]:
    """The server this process runs under, else the deepest root folder holding ``cwd``, else the newest."""
    for info in servers:
        if info.get("pid") == parent_pid:
            return info
    inside = []
    for info in servers:
        root = info.get("root_dir") or info.get("notebook_dir")
        if root:
            try:
                cwd.resolve().relative_to(Path(root).resolve())
            except ValueError:
                continue
            inside.append((len(Path(root).resolve().parts), info))
    if inside:
        return max(inside, key=lambda pair: pair[0])[1]
    return servers[-1]


def server_info(base_url: str) -> dict[str, Any] | None:
    """The runtime-file record of the running server at ``base_url`` (with its ``root_dir``), or None."""
    want = base_url.rstrip("/")
    for info in running_servers():
        if str(info.get("url", "")).rstrip("/") == want:
            return info
    return None


def server_root_dir(base_url: str) -> str | None:
    """The root folder of the server at ``base_url``: ``SWM_ROOT_DIR``, else its runtime file's, else None."""
    if os.environ.get("SWM_ROOT_DIR"):
        return os.environ["SWM_ROOT_DIR"]
    root = (server_info(base_url) or {}).get("root_dir")
    return str(root) if root else None


def server_path(path: str | os.PathLike[str], root: str | None) -> str:
    """``path`` (relative to the current folder, or absolute) as a path below the server's ``root`` folder.

    The server reads notebooks and input files relative to its root folder; a kernel or a shell runs
    in a folder below it. Without a known ``root``, ``path`` is returned as given. A path outside
    ``root`` raises :class:`SwmError` saying so.
    """
    if not root:
        return str(path)
    full = Path(path).expanduser()
    full = full if full.is_absolute() else Path.cwd() / full
    try:
        return str(full.resolve().relative_to(Path(root).expanduser().resolve()))
    except ValueError:
        raise SwmError(f"{path} is outside the server's root folder {root}; copy it there first") from None


__all__ = [
    "API_PATH",
    "Located",
    "check_base_url",
    "find_server",
    "locate_server",
    "running_servers",
    "server_info",
    "server_path",
    "server_root_dir",
]
