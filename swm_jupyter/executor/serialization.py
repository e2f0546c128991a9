"""What travels between a kernel and a site: the call file, the result file and their version headers.

Both files start with one line of JSON (the header) followed by cloudpickle bytes. The header says
which Python (major.minor) and which ``cloudpickle`` wrote the pickle; the reader compares them
with its own before it unpickles anything, so a mismatch is a sentence naming both sides instead
of a pickle traceback. The same rules are written out again in :mod:`swm_jupyter.executor.runner`,
which runs on the site without swm-jupyter installed; this module is the kernel's side.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from typing import Any

#: Version of the file layout (header line + pickle); bumped if it ever changes.
FORMAT = 1
#: Name of the call file (function and arguments) and of the result file in the job folder.
CALL_FILE = "swm-call.pickle"
RESULT_FILE = "swm-result.pickle"
#: The longest header line read before giving up (it is a few hundred bytes).
MAX_HEADER = 64 * 1024


class VersionMismatch(RuntimeError):
    """The site's Python or cloudpickle is not the kernel's: nothing was unpickled."""


class ResultTooLarge(RuntimeError):
    """The pickled result is larger than the executor's ``max_result_bytes``: it was not sent back."""


def cloudpickle_version() -> str:
    """The version of the ``cloudpickle`` installed here."""
    import cloudpickle

    return str(cloudpickle.__version__)


def local_versions() -> dict[str, str]:
    """``{"python": "3.11", "cloudpickle": "3.1.1"}`` of this interpreter."""
    return {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "cloudpickle": cloudpickle_version()}


def short(version: str | None) -> str:
    """``"3.1.1"`` -> ``"3.1"``: the part of a cloudpickle version people recognise; ``None`` -> ``"none"``."""
    if not version:
        return "none"
    return ".".join(str(version).split(".")[:2])


def versions_match(site: dict[str, Any], kernel: dict[str, Any]) -> bool:
    """True when the Python major.minor and the cloudpickle versions are the same on both sides."""
    return site.get("python") == kernel.get("python") and site.get("cloudpickle") == kernel.get("cloudpickle")


def mismatch_message(site_name: str, site: dict[str, Any], kernel: dict[str, Any]) -> str:
    """Both sides in one sentence: ``site hpc runs Python 3.9 with cloudpickle 2.2; this kernel runs 3.11 with 3.1``."""
    site_cp, kernel_cp = short(site.get("cloudpickle")), short(kernel.get("cloudpickle"))
    if site_cp == kernel_cp and site.get("cloudpickle") != kernel.get("cloudpickle"):
        site_cp, kernel_cp = str(site.get("cloudpickle")), str(kernel.get("cloudpickle"))  # only the patch differs
    site_text = (
        f"Python {site.get('python') or 'unknown'} with cloudpickle {site_cp}"
        if site_cp != "none"
        else f"Python {site.get('python') or 'unknown'} without cloudpickle"
    )
    return (
        f"site {site_name} runs {site_text}; this kernel runs {kernel.get('python')} with "
        f"{kernel_cp}. Give the site an interpreter like the kernel's "
        "(the site's 'python' option, or Executor(python=...)) with the same cloudpickle installed"
    )


def make_header(**fields: Any) -> bytes:
    """One JSON line with this interpreter's versions and ``fields``."""
    head = {"format": FORMAT, **local_versions(), "implementation": platform.python_implementation(), **fields}
    return (json.dumps(head, separators=(",", ":")) + "\n").encode()


def split_header(data: bytes) -> tuple[dict[str, Any], bytes]:
    """``(header, pickle bytes)`` of a call or result file. Raises ``ValueError`` if it has no header."""
    line, newline, _ = data[:MAX_HEADER].partition(b"\n")
    if not newline:
        raise ValueError("the file has no header line")
    try:
        head = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"the header is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise ValueError("the header is not a JSON object")
    return head, data[len(line) + 1 :]


def dump_call(
    fn: Any, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], *, chunked: bool, max_result_bytes: int
) -> bytes:
    """The call file: ``fn`` and one ``(args, kwargs)`` per task (or per chunk, a list of them).

    Raises ``TypeError`` naming what could not be pickled.
    """
    import cloudpickle

    try:
        body = cloudpickle.dumps({"fn": fn, "calls": calls, "chunked": chunked}, protocol=4)
    except Exception as exc:
        raise TypeError(f"cannot send {getattr(fn, '__qualname__', fn)!r} and its arguments to a site: {exc}") from exc
    return make_header(max_result_bytes=max_result_bytes) + body


@dataclass
class Outcome:
    """What a result file says: ``ok`` with ``value``, or ``error`` (an exception, its traceback text)."""

    ok: bool
    value: Any = None
    error: BaseException | None = None
    traceback: str = ""


class RemoteTraceback(Exception):
    """The traceback of an exception raised on the site (attached as its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text


def load_result(data: bytes, *, site_name: str, max_result_bytes: int) -> Outcome:
    """Read a result file: versions checked first, then the value or the exception unpickled.

    Raises :class:`VersionMismatch` or :class:`ResultTooLarge` (nothing unpickled), ``ValueError``
    for a file that is not a result file.
    """
    import cloudpickle

    head, body = split_header(data)
    kernel = local_versions()
    if head.get("refused") == "versions" or not versions_match(head, kernel):
        raise VersionMismatch(mismatch_message(site_name, head, kernel))
    if head.get("refused") == "size" or len(body) > max_result_bytes:
        size = head.get("size", len(body))
        raise ResultTooLarge(
            f"the result is {size:,} bytes pickled, more than max_result_bytes={max_result_bytes:,}: write large "
            "results to files in the job folder (job.fetch) or raise Executor(max_result_bytes=...)"
        )
    if head.get("refused"):
        raise ValueError(f"the site refused the call: {head.get('message', head['refused'])}")
    text = str(head.get("traceback") or "")
    if head.get("ok"):
        return Outcome(True, value=cloudpickle.loads(body))
    try:
        error = cloudpickle.loads(body) if body else None
    except Exception as exc:  # the exception's class cannot be rebuilt here
        error = RuntimeError(f"{head.get('error_type', 'an exception')} raised on the site (not unpicklable: {exc})")
    if not isinstance(error, BaseException):
        error = RuntimeError(f"{head.get('error_type', 'an exception')}: {head.get('message', '')}")
    if text:
        error.__cause__ = RemoteTraceback(text)
    return Outcome(False, error=error, traceback=text)
