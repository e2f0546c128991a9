"""The call inside the job script, for a kernel whose folder the swm server cannot read.

Normally a call travels as two ``input_files`` (the call file and the runner) that the server reads
below its root folder. A kernel of a hub user's server that runs as a swm job on another site (an
SSH host, a cloud VM) writes them where the swm service cannot see them, and the service refuses
the submission (``400`` on ``input_files``). The API has no other way to send a file with a
submission than the job's ``script``; so then the executor sends both files inside the script, as
base64 here-documents that the script unpacks into its job folder before it runs the runner.
"""

from __future__ import annotations

import base64
import shlex

from ..client.errors import SwmError

#: The largest pickled call sent inside a script (bytes). The script is stored with the job and
#: base64 makes the call a third larger; Slurm refuses batch scripts over 4 MB by default
#: (``max_script_size``), the server requests over ``SwmApp.max_body_bytes`` (16 MiB).
MAX_INLINE_CALL_BYTES = 2 * 1024 * 1024


def inputs_unreadable(exc: BaseException) -> bool:
    """True when ``exc`` is the server refusing a submission because it cannot read its ``input_files``."""
    return (
        isinstance(exc, SwmError)
        and exc.status == 400
        and any(isinstance(e, dict) and e.get("field") == "input_files" for e in exc.errors)
    )


def _heredoc(name: str, data: bytes, end: str) -> str:
    """Shell lines that write ``data`` into the file ``name`` (atomically: a task's own temporary name, then mv)."""
    text = base64.encodebytes(data).decode("ascii")  # 76-column lines of A-Z a-z 0-9 + / =: never ``end``
    return f"swm_unpack {shlex.quote(name)} <<'{end}'\n{text}{end}\n"


def inline_script(interpreter: str, runner: bytes, runner_name: str, call: bytes, call_name: str) -> str:
    """A bash script that writes the runner and the call into its folder, then runs ``interpreter runner call``.

    Raises ``ValueError`` when the pickled call is over :data:`MAX_INLINE_CALL_BYTES`.
    """
    if len(call) > MAX_INLINE_CALL_BYTES:
        raise ValueError(
            f"the call is {len(call):,} bytes pickled; the swm server cannot read this kernel's folder, so the "
            f"call travels inside the job's script, which holds at most {MAX_INLINE_CALL_BYTES:,} bytes: pass "
            "large data as files the site can read (or run the kernel where the server's root folder is)"
        )
    return (
        "#!/bin/bash\n"
        "# Executor call sent with the submission (the server cannot read the kernel's folder)\n"
        "set -e\n"
        'swm_unpack() { base64 -d > "$1.$$.part" && mv -f "$1.$$.part" "$1"; }\n'
        + _heredoc(runner_name, runner, "SWM_RUNNER_END")
        + _heredoc(call_name, call, "SWM_CALL_END")
        + f"{interpreter} {shlex.quote(runner_name)} {shlex.quote(call_name)}\n"
    )


__all__ = ["MAX_INLINE_CALL_BYTES", "inline_script", "inputs_unreadable"]
