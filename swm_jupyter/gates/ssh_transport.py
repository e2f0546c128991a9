"""One reusable SSH connection per host (asyncssh): commands as argv, files over SFTP, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import shlex
import stat
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncssh
from traitlets import TraitError

from ..core.errors import PathNotAllowed, SiteUnavailable
from ..core.job_files import UnsafeJobFile, create_job_file, make_job_folder, open_job_file
from .commands import CommandError, CommandResult

_log = logging.getLogger(__name__)

#: Errors after which the connection is dropped and made again.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    ConnectionError,
    BrokenPipeError,
    EOFError,
    OSError,
)


def remote_command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Quote ``argv`` (and ``env`` as ``env NAME=value`` in front) into one POSIX shell line.

    The remote side always parses a string; every piece is quoted here, so no part of a job or
    path can become shell syntax.
    """
    words = [str(a) for a in argv]
    if env:
        words = ["env", *(f"{k}={v}" for k, v in env.items()), *words]
    return shlex.join(words)


def check_host_option(value: str, field: str, user_field: str) -> str:
    """Return ``value`` if it is a bare host name or address (the gate option ``field``).

    Raises ``traitlets.TraitError`` naming the field (never echoing the value, which may hold a
    password given in the wrong place) for ``user@host``, ``user:password@host``, spaces or a URL.
    """
    if value and (any(c in value for c in "@/ \t\n") or value.count(":") == 1):
        raise TraitError(
            f"{field} must be a host name or address only (no user, password, port or URL; the value is not "
            f"shown): give the user in {user_field}, the port in the port option, and log in with a key"
        )
    return value


class SshTransport:
    """An SSH connection to one host, opened on first use and reused by every job of a site.

    When the connection drops, the next call connects again with capped exponential backoff.
    Host keys are checked against ``known_hosts`` (None: ``~/.ssh/known_hosts``) unless
    ``check_host_keys`` is False. Keys come from ``key_files`` and/or the SSH agent.
    """

    def __init__(
        self,
        host: str,
        *,
        port: int = 22,
        username: str | None = None,
        key_files: Sequence[str] = (),
        known_hosts: str | None = None,
        check_host_keys: bool = True,
        use_agent: bool = True,
        env: Mapping[str, str] | None = None,
        connect_timeout: float = 15.0,
        keepalive_interval: float = 10.0,
        connect_attempts: int = 6,
        max_backoff: float = 10.0,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username or None
        self.key_files = [os.path.expanduser(k) for k in key_files if k]
        self.known_hosts = os.path.expanduser(known_hosts) if known_hosts else None
        self.check_host_keys = check_host_keys
        self.use_agent = use_agent
        self.env = dict(env or {})
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.connect_attempts = max(1, connect_attempts)
        self.max_backoff = max_backoff
        self.log = log or _log
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        #: How many times a connection was made (1 + reconnects); tests and describe() read it.
        self.connections_made = 0
        #: How many remote commands were started (benchmarks and tests read it).
        self.commands_run = 0

    @property
    def target(self) -> str:
        """``user@host:port`` for messages (no secrets in it)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"

    def _options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": 3,
        }
        if self.username:
            opts["username"] = self.username
        if not self.check_host_keys:
            opts["known_hosts"] = None
        elif self.known_hosts:
            opts["known_hosts"] = self.known_hosts
        if self.key_files:
            opts["client_keys"] = self.key_files
        if not self.use_agent:
            opts["agent_path"] = None
        return opts

    def _alive(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.is_closed()

    async def connect(self) -> asyncssh.SSHClientConnection:
        """Return the open connection, making it (with backoff) if there is none.

        Raises :class:`SiteUnavailable` when the host cannot be reached after the retries, or
        at once when the host key or the login is refused (retrying would not help).
        """
        if self._alive():
            assert self._conn is not None
            return self._conn
        async with self._lock:
            if self._alive():
                assert self._conn is not None
                return self._conn
            self._drop()
            delay = 0.5
            last: BaseException | None = None
            for attempt in range(self.connect_attempts):
                try:
                    conn = await asyncssh.connect(**self._options())
                except asyncssh.HostKeyNotVerifiable as exc:
                    raise SiteUnavailable(f"the host key of {self.target} is not trusted: {exc.reason}") from None
                except asyncssh.PermissionDenied as exc:
                    raise SiteUnavailable(f"SSH login to {self.target} was refused: {exc.reason}") from None
                except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                    last = exc
                    if attempt + 1 < self.connect_attempts:
                        self.log.info(
                            "SSH to %s failed (%s); trying again in %.1f s", self.target, _describe(exc), delay
                        )
                        await asyncio.sleep(delay)
                        delay = min(self.max_backoff, delay * 2)
                    continue
                self._conn = conn
                self.connections_made += 1
                if self.connections_made > 1:
                    self.log.info("SSH connection to %s made again", self.target)
                return conn
            raise SiteUnavailable(f"cannot connect to {self.target}: {_describe(last)}")

    def _drop(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.exit()
        self._sftp = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.abort()
        self._conn = None

    async def close(self) -> None:
        """Close the connection (jobs on the host are not affected)."""
        conn = self._conn
        self._drop()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = 120.0,
        idempotent: bool = True,
    ) -> CommandResult:
        """Run ``argv`` on the host (quoted, with the transport's and ``env``'s variables set).

        When the connection drops the command is tried once more on a new connection — unless
        ``idempotent`` is False and the command may already have started (a submission), in
        which case :class:`CommandError` with ``transient=True`` is raised. With ``check``, a
        non-zero exit raises :class:`CommandError` (command, exit code, stderr).
        """
        args = [str(a) for a in argv]
        merged = {**self.env, **(env or {})}
        line = remote_command_line(args, merged)
        for attempt in range(2):
            conn = await self.connect()
            self.commands_run += 1
            try:
                proc = await asyncio.wait_for(
                    conn.run(line, input=input, check=False, encoding="utf-8", errors="replace"), timeout
                )
            except asyncio.TimeoutError:
                raise CommandError(
                    args, None, "", reason=f"timed out after {timeout:g} s over SSH", transient=True
                ) from None
            except asyncssh.ChannelOpenError as exc:
                # The command never started: always safe to try again.
                self.log.info("SSH channel to %s refused (%s); reconnecting", self.target, exc.reason)
                self._drop()
                if attempt:
                    raise CommandError(
                        args, None, str(exc.reason), reason="could not start over SSH", transient=True
                    ) from None
                continue
            except _CONNECTION_ERRORS as exc:
                self.log.info("SSH connection to %s lost (%s)", self.target, _describe(exc))
                self._drop()
                if attempt or not idempotent:
                    raise CommandError(
                        args, None, _describe(exc), reason="lost its SSH connection", transient=True
                    ) from None
                continue
            exit_code = proc.exit_status
            if exit_code is None or exit_code < 0:
                if proc.exit_signal:
                    exit_code = 128
                else:
                    # No exit status: the connection went away under the command.
                    self._drop()
                    if attempt or not idempotent:
                        raise CommandError(args, None, "", reason="lost its SSH connection", transient=True)
                    continue
            result = CommandResult(tuple(args), exit_code, str(proc.stdout or ""), str(proc.stderr or ""))
            if check and result.exit_code != 0:
                raise CommandError(args, result.exit_code, result.stderr, result.stdout)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self.connect()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    async def _with_sftp(self, what: str, action: Any) -> Any:
        """Run ``action(sftp)`` and retry once on a new connection if the connection dropped."""
        for attempt in range(2):
            sftp = await self._sftp_client()
            try:
                return await action(sftp)
            except asyncssh.SFTPError:
                raise
            except _CONNECTION_ERRORS as exc:
                self.log.info("SFTP to %s failed during %s (%s)", self.target, what, _describe(exc))
                self._drop()
                if attempt:
                    raise CommandError(
                        ["sftp", what], None, _describe(exc), reason="lost its SSH connection", transient=True
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents on the host (no error if it exists)."""

        async def action(sftp: asyncssh.SFTPClient) -> None:
            await sftp.makedirs(path, exist_ok=True)

        await self._with_sftp(f"mkdir {path}", action)

    async def upload_folder(self, local: str, remote: str) -> list[str]:
        """Copy the regular files and folders of the local job folder ``local`` into the remote
        folder ``remote`` (made if missing), as a job's inputs are staged in.

        Symbolic links (and anything not a regular file or folder) in the job folder are not
        followed nor copied; each file is opened with
        :func:`~swm_jupyter.core.job_files.open_job_file`. Returns the relative paths left out.
        """
        refused: list[str] = []
        entries = await asyncio.to_thread(_job_folder_entries, local, refused)

        async def action(sftp: asyncssh.SFTPClient) -> None:
            await sftp.makedirs(remote, exist_ok=True)
            for relpath, is_dir in entries:
                target = posixpath.join(remote, relpath)
                if is_dir:
                    await sftp.makedirs(target, exist_ok=True)
                    continue
                try:
                    source = await asyncio.to_thread(open_job_file, local, relpath)
                except (PathNotAllowed, FileNotFoundError):
                    refused.append(relpath)
                    continue
                try:
                    info = os.fstat(source.fileno())
                    async with sftp.open(target, "wb") as handle:
                        while chunk := await asyncio.to_thread(source.read, 1 << 20):
                            await handle.write(chunk)
                    await sftp.chmod(target, stat.S_IMODE(info.st_mode))
                    await sftp.utime(target, (info.st_atime, info.st_mtime))
                finally:
                    source.close()

        await self._with_sftp(f"put {remote}", action)
        if refused:
            self.log.warning("not copied to %s (symbolic links or not regular files): %s", remote, ", ".join(refused))
        return refused

    async def download_folder(self, remote: str, local: str, *, skip: Collection[str] = ()) -> list[str]:
        """Copy the regular files and folders under the remote folder ``remote`` into the local job
        folder ``local`` (output collection), leaving out the top-level names in ``skip``.

        What the job left on the remote side is not trusted: a symbolic link (or FIFO, device...)
        there is never followed or copied, and each local file is written through
        :func:`~swm_jupyter.core.job_files.create_job_file`, so nothing outside ``local`` is
        written whatever the names or links on either side. Returns the relative paths left out
        because they were links or not regular files. A remote folder that does not exist copies
        nothing.
        """
        refused: list[str] = []

        async def copy_file(sftp: asyncssh.SFTPClient, source: str, relpath: str, attrs: Any) -> None:
            handle = await asyncio.to_thread(create_job_file, local, relpath)
            try:
                async with sftp.open(source, "rb") as remote_file:
                    while chunk := await remote_file.read(1 << 20):
                        await asyncio.to_thread(handle.write, chunk)
                if attrs.mtime is not None:
                    os.utime(handle.fileno(), (attrs.atime or attrs.mtime, attrs.mtime))
            finally:
                handle.close()

        async def walk(sftp: asyncssh.SFTPClient, folder: str, prefix: str) -> None:
            try:
                entries = await sftp.readdir(folder)
            except asyncssh.SFTPNoSuchFile:
                return
            for entry in sorted(entries, key=lambda e: str(e.filename)):
                name = str(entry.filename)
                if name in (".", "..") or (not prefix and name in skip) or "/" in name:
                    continue
                relpath = f"{prefix}{name}"
                mode = entry.attrs.permissions or 0  # readdir answers lstat: links are seen as links
                if stat.S_ISDIR(mode):
                    await asyncio.to_thread(make_job_folder, local, relpath)
                    await walk(sftp, posixpath.join(folder, name), f"{relpath}/")
                elif stat.S_ISREG(mode):
                    await copy_file(sftp, posixpath.join(folder, name), relpath, entry.attrs)
                else:
                    refused.append(relpath)

        async def action(sftp: asyncssh.SFTPClient) -> None:
            refused.clear()
            await walk(sftp, remote, "")

        await self._with_sftp(f"get {remote}", action)
        if refused:
            self.log.warning(
                "not copied from %s (symbolic links or not regular files): %s", remote, ", ".join(refused[:20])
            )
        return refused

    async def write_bytes(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        """Write ``data`` to the file ``path`` on the host (replacing it), optionally with ``mode`` (a new file is
        created with it, so it is never wider, even for a moment)."""

        async def action(sftp: asyncssh.SFTPClient) -> None:
            attrs = asyncssh.SFTPAttrs(permissions=mode) if mode is not None else asyncssh.SFTPAttrs()
            async with sftp.open(path, "wb", attrs) as handle:
                await handle.write(data)
            if mode is not None:
                await sftp.chmod(path, mode)

        await self._with_sftp(f"write {path}", action)

    async def read_range(self, path: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Return up to ``limit`` bytes of the remote file ``path`` from ``offset`` (live logs).

        A file that does not exist yet reads as empty. A symbolic link (or anything but a regular
        file) is not read: :class:`~swm_jupyter.core.job_files.UnsafeJobFile`. (SFTP cannot open
        without following links; what a link swapped in after the check leads to is read with the
        rights of the remote account that runs the job, which the job has anyway.)
        """

        async def action(sftp: asyncssh.SFTPClient) -> bytes:
            try:
                mode = (await sftp.lstat(path)).permissions or 0
                if not stat.S_ISREG(mode):
                    what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                    raise UnsafeJobFile(
                        f"the job's {posixpath.basename(path)!r} is {what}; swm reads only regular files "
                        "inside the job folder"
                    )
                async with sftp.open(path, "rb") as handle:
                    await handle.seek(max(0, offset))
                    data: bytes = await handle.read(limit)
                    return data
            except asyncssh.SFTPNoSuchFile:
                return b""

        result: bytes = await self._with_sftp(f"read {path}", action)
        return result


def _job_folder_entries(folder: str, refused: list[str]) -> list[tuple[str, bool]]:
    """``(relative path, is a folder)`` of every folder and regular file under ``folder``, parents
    first, reached through no symbolic link; what is left out goes into ``refused``.
    """
    out: list[tuple[str, bool]] = []
    if not os.path.isdir(folder):
        return out
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(os.path.join(folder, prefix) if prefix else folder) as scan:
            for entry in sorted(scan, key=lambda e: e.name):
                relpath = f"{prefix}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    out.append((relpath, True))
                    pending.append(f"{relpath}/")
                elif entry.is_file(follow_symlinks=False):
                    out.append((relpath, False))
                else:
                    refused.append(relpath)
    return out


#: A constant script: for each named file, a record separator, + or - (exists or not), the name,
#: then the file's text. No user text is ever part of the script itself.
_READ_FILES_SCRIPT = (
    'for f do if [ -f "$f" ]; then printf "\\036+%s\\n" "$f"; cat -- "$f" 2>/dev/null; '
    'else printf "\\036-%s\\n" "$f"; fi; done'
)


async def read_remote_files(transport: SshTransport, paths: Sequence[str]) -> dict[str, str | None]:
    """Read many small remote text files with one SSH command; a missing file maps to None."""
    out: dict[str, str | None] = {p: None for p in paths}
    if not paths:
        return out
    result = await transport.run(["sh", "-c", _READ_FILES_SCRIPT, "sh", *paths], check=False, timeout=60)
    for record in result.stdout.split("\x1e")[1:]:
        head, _, body = record.partition("\n")
        if head[1:] in out and head.startswith("+"):
            out[head[1:]] = body
    return out


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    reason = getattr(exc, "reason", "") or str(exc)
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


__all__ = ["SshTransport", "read_remote_files", "remote_command_line"]
