"""The local supervisor: a small process that starts local jobs and records how they end.

The local gate does not make jobs children of the Jupyter server: when the server died, the exit
status of its children would be lost. It asks this supervisor instead, over a UNIX socket that
only its user can open. The supervisor runs in its own session, so it outlives the server; for
each job it writes ``.swm/pid`` before answering and ``.swm/rc`` (atomically) when the job ends,
and tells connected servers at once. It leaves when it has had no job and no client for
``IDLE_SECONDS``.

Protocol: one JSON object per line. Requests ``{"op": "spawn", "id", "argv", "cwd", "env",
"stdout", "stderr", "status_dir"}`` are answered ``{"reply": id, "pid", "started"}`` or
``{"reply": id, "error"}``; every client receives ``{"exit": id, "rc", "end"}`` when a job ends.
Run as ``python -m swm_jupyter.gates.local_supervisor SOCKET``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

IDLE_SECONDS = 20.0


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Supervisor:
    """Accepts spawn requests, starts jobs in their own sessions, reports their exit status."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.selector = selectors.DefaultSelector()
        self.clients: dict[socket.socket, bytearray] = {}
        self.children: dict[int, tuple[subprocess.Popen[bytes], str, Path]] = {}
        self.idle_since = time.monotonic()

    def listen(self) -> None:
        """Bind the socket (replacing a stale one) with permissions for this user only."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o077)
        try:
            listener.bind(self.socket_path)
        finally:
            os.umask(old_mask)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, "accept")

    def run(self) -> None:
        """Serve until idle for :data:`IDLE_SECONDS`."""
        while True:
            for key, _ in self.selector.select(timeout=1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "client":
                    self._read(key.fileobj)  # type: ignore[arg-type]
                else:
                    self._exited(key.data)
            if self.children or self.clients:
                self.idle_since = time.monotonic()
            elif time.monotonic() - self.idle_since > IDLE_SECONDS:
                break
        self.selector.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        self.clients[conn] = bytearray()
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        self.clients.pop(conn, None)
        conn.close()

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buffer = self.clients[conn]
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            self._send(conn, self._handle(json.loads(line)))

    def _send(self, conn: socket.socket, message: dict[str, Any]) -> None:
        payload = (json.dumps(message) + "\n").encode()
        try:
            conn.setblocking(True)
            conn.sendall(payload)
            conn.setblocking(False)
        except OSError:
            self._drop(conn)

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request.get("id")
        if request.get("op") != "spawn":
            return {"reply": request_id, "error": f"unknown op {request.get('op')!r}"}
        status_dir = Path(request["status_dir"])
        try:
            with open(request["stdout"], "ab") as out, open(request["stderr"], "ab") as err:
                started = time.time()
                proc = subprocess.Popen(
                    request["argv"],
                    cwd=request["cwd"],
                    env=request["env"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            write_atomically(status_dir / "pid", f"{proc.pid}\n")
        except OSError as exc:
            return {"reply": request_id, "error": f"could not start the job: {exc.strerror or exc}"}
        pidfd = os.pidfd_open(proc.pid)
        self.children[pidfd] = (proc, str(request_id), status_dir)
        self.selector.register(pidfd, selectors.EVENT_READ, pidfd)
        return {"reply": request_id, "pid": proc.pid, "started": started}

    def _exited(self, pidfd: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        proc, job_id, status_dir = self.children.pop(pidfd)
        code = proc.wait()
        rc = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report it
        write_atomically(status_dir / "rc", f"{rc}\n")
        message = {"exit": job_id, "rc": rc, "end": time.time()}
        for conn in list(self.clients):
            self._send(conn, message)


def main() -> None:
    """Entry point: ``python -m swm_jupyter.gates.local_supervisor SOCKET``."""
    supervisor = Supervisor(sys.argv[1])
    supervisor.listen()
    supervisor.run()


if __name__ == "__main__":
    main()
