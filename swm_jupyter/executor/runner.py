"""Run one Python call of an executor job on its site: ``python runner.py swm-call.pickle``.

This file is copied into the job folder with the call and run by the site's interpreter, so it
imports nothing from swm-jupyter (only the standard library and ``cloudpickle``). It reads the
call file's JSON header and compares the Python (major.minor) and cloudpickle versions with its
own before unpickling anything; then it runs the function on the arguments of its task (the
array index ``SWM_ARRAY_TASK_ID``, or the only call) and writes ``swm-result.pickle`` into the
current folder: a JSON header with its versions, then the pickled value or exception. A refusal
(versions, a result over ``max_result_bytes``) writes the header alone. Exit code: 0 when the
function returned, 1 when it raised, 3 when the call was refused.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

RESULT_FILE = "swm-result.pickle"
FORMAT = 1


def _versions() -> dict[str, Any]:
    try:
        import cloudpickle

        version: str | None = str(cloudpickle.__version__)
    except Exception:
        version = None
    return {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "cloudpickle": version}


def _write(head: dict[str, Any], body: bytes = b"") -> None:
    data = (json.dumps({"format": FORMAT, **_versions(), **head}, separators=(",", ":")) + "\n").encode() + body
    partial = RESULT_FILE + ".partial"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, RESULT_FILE)


def _task_index(count: int) -> int:
    text = os.environ.get("SWM_ARRAY_TASK_ID", "")
    index = int(text) if text.strip().lstrip("-").isdigit() else 0
    if not 0 <= index < count:
        raise IndexError(f"task {index} of a call file with {count} calls")
    return index


def main(argv: list[str]) -> int:
    """Run the call of this task; returns the process's exit code."""
    if len(argv) != 1:
        print("usage: python runner.py CALL_FILE", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as source:
        data = source.read()
    line, _, body = data.partition(b"\n")
    kernel = json.loads(line)
    mine = _versions()
    if mine["python"] != kernel.get("python") or mine["cloudpickle"] != kernel.get("cloudpickle"):
        _write(
            {
                "refused": "versions",
                "kernel": {"python": kernel.get("python"), "cloudpickle": kernel.get("cloudpickle")},
            }
        )
        print(
            f"swm executor: this site runs Python {mine['python']} with cloudpickle {mine['cloudpickle'] or '(none)'}; "
            f"the kernel runs {kernel.get('python')} with {kernel.get('cloudpickle')}: nothing was run",
            file=sys.stderr,
        )
        return 3
    import cloudpickle

    limit = int(kernel.get("max_result_bytes") or 0)
    payload = cloudpickle.loads(body)
    fn, calls = payload["fn"], payload["calls"]
    try:
        work = calls[_task_index(len(calls))]
        if payload.get("chunked"):
            value: Any = [fn(*args, **kwargs) for args, kwargs in work]
        else:
            args, kwargs = work
            value = fn(*args, **kwargs)
    except BaseException as exc:  # the function's own failure: sent back to the kernel
        import traceback  # only now: every import is paid by every call

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(text)
        try:
            pickled = cloudpickle.dumps(exc, protocol=4)
        except Exception:
            pickled = b""
        _write(
            {"ok": False, "error_type": type(exc).__qualname__, "message": str(exc)[:2000], "traceback": text},
            pickled,
        )
        return 1
    pickled = cloudpickle.dumps(value, protocol=4)
    if limit and len(pickled) > limit:
        _write({"refused": "size", "size": len(pickled)})
        print(f"swm executor: the result is {len(pickled)} bytes, over max_result_bytes={limit}", file=sys.stderr)
        return 3
    _write({"ok": True, "size": len(pickled)}, pickled)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
