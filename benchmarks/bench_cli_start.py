"""CLI start-up benchmark: the wall time of ``swm jobs`` with and without ``SWM_URL``, against ``python -c pass``.

Run: ``python benchmarks/bench_cli_start.py [--runs 15]``. Starts a real ``jupyter server`` (as
``bench_api.py`` does) in a temporary folder, then times, interleaved, each of:

- ``python -c pass``: the interpreter's own start, the floor;
- ``python -c "import jupyter_server.serverapp"``: what finding the server cost when the CLI asked
  ``jupyter_server`` for the running servers (for reference);
- ``swm jobs`` with ``SWM_URL`` and ``SWM_TOKEN`` set;
- ``swm jobs`` finding the server in Jupyter's runtime files (``jpserver-*.json``).

``swm`` runs as ``python -m swm_jupyter.cli`` with this checkout first on the path. Prints medians and
minimums, their ratio to the floor, and whether each ``swm jobs`` median is under the 0.4 s target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_api import TOKEN, start_server

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.4


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from starting ``argv`` to its exit; a failed run stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def main() -> None:
    """Start a server, time the contenders ``--runs`` times each (interleaved) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each contender (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swm-bench-cli-") as tmp:
        base = Path(tmp)
        proc, url = start_server(base, base / "swm-data")
        try:
            plain = {k: v for k, v in os.environ.items() if k not in ("SWM_URL", "SWM_TOKEN", "SWM_ROOT_DIR")}
            plain["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), plain.get("PYTHONPATH", "")) if p)
            plain["JUPYTER_RUNTIME_DIR"] = str(base / "runtime")
            with_url = dict(plain, SWM_URL=url, SWM_TOKEN=TOKEN)
            swm = [sys.executable, "-m", "swm_jupyter.cli", "jobs"]
            contenders = {
                "python -c pass (floor)": ([sys.executable, "-c", "pass"], plain),
                "import jupyter_server.serverapp": ([sys.executable, "-c", "import jupyter_server.serverapp"], plain),
                "swm jobs, SWM_URL set": (swm, with_url),
                "swm jobs, found in runtime files": (swm, plain),
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            for argv, env in contenders.values():  # warm the file cache once
                timed(argv, env, base / "root")
            for _ in range(args.runs):
                for name, (argv, env) in contenders.items():
                    times[name].append(timed(argv, env, base / "root"))
        finally:
            proc.terminate()
            proc.wait(30)
    floor = statistics.median(times["python -c pass (floor)"])
    print(f"{args.runs} runs each, interleaved; Python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    print(f"{'contender':36} {'median':>8} {'min':>8} {'x floor':>8}  target")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = ""
        if name.startswith("swm"):
            verdict = f"< {TARGET_SECONDS} s: " + ("yes" if median < TARGET_SECONDS else "NO")
        print(f"{name:36} {median:7.3f}s {min(values):7.3f}s {median / floor:7.1f}x  {verdict}")


if __name__ == "__main__":
    main()
