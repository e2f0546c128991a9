"""Run external commands for gates: argument lists only (never a shell string), typed errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.errors import GateError
from ..core.job_env import without_secrets

#: How much of a command's stderr an error message quotes.
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned: its argv, exit code and decoded output."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited with 0."""
        return self.exit_code == 0


class CommandError(GateError):
    """An external command failed: it carries the command, its exit code and its stderr.

    ``exit_code`` is None when the command did not run to an end (not found, timed out, the SSH
    connection dropped). ``transient`` is True when trying again later may succeed.
    """

    def __init__(
        self,
        argv: Sequence[str],
        exit_code: int | None,
        stderr: str,
        stdout: str = "",
        *,
        reason: str = "",
        transient: bool = False,
    ) -> None:
        self.argv = tuple(str(a) for a in argv)
        self.command = self.argv
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout
        self.transient = transient
        name = self.argv[0] if self.argv else "command"
        why = reason or (f"exited with {exit_code}" if exit_code is not None else "failed")
        text = stderr.strip()[-_STDERR_TAIL:]
        super().__init__(f"{name} {why}" + (f": {text}" if text else ""))


async def run_command(
    argv: Sequence[str],
    *,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = 120.0,
    check: bool = True,
) -> CommandResult:
    """Run ``argv`` (no shell) and return its :class:`CommandResult`.

    ``env`` adds to (and overrides) this process's environment, which is passed on without the
    server's secrets (:data:`~swm_jupyter.core.job_env.BUILTIN_SECRET_ENV`): ``sbatch`` hands the
    environment it runs in to the job. Raises :class:`CommandError` when
    the program is missing, when it runs longer than ``timeout`` seconds (it is then killed), or —
    with ``check`` — when it exits with a non-zero code. Cancelling the caller kills the command.
    """
    args = [str(a) for a in argv]
    if not args:
        raise ValueError("run_command needs a non-empty argument list")
    full_env = without_secrets(os.environ)
    full_env.update(env or {})
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise CommandError(args, None, str(exc), reason="could not be started") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    except asyncio.TimeoutError:
        _kill(proc)
        await _reap(proc)
        raise CommandError(args, None, "", reason=f"timed out after {timeout:g} s", transient=True) from None
    except asyncio.CancelledError:
        _kill(proc)
        await asyncio.shield(_reap(proc))
        raise
    result = CommandResult(
        tuple(args),
        proc.returncode if proc.returncode is not None else -1,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )
    if check and result.exit_code != 0:
        raise CommandError(args, result.exit_code, result.stderr, result.stdout)
    return result


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), 5)


__all__ = ["CommandError", "CommandResult", "run_command"]
