"""The ``swm`` command line: submit, list, show, act on, tail and wait for jobs of a running server.

It finds the server with no configuration (Jupyter's runtime files; ``SWM_URL`` and ``SWM_TOKEN``
override), prints tables for people and ``--json`` for scripts, and answers a bad argument or an
unreachable server with one line on stderr and a non-zero exit status:

- 0: done; ``swm wait``: the job's exit code (128 + signal if it was killed, 1 if it failed to run
  or was canceled, 124 on ``--timeout``);
- 1: the server refused (the line says why); 2: bad arguments; 3: no server reachable.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .cli_sites import site_text, table
from .client.connection import Connection
from .client.discovery import server_path, server_root_dir
from .client.errors import ServerNotFound, SwmError
from .client.render import after_action, state_text
from .core.jobfields import add_spec_options, option_values, spec_from_options

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 124
FINAL = {"finished", "error", "canceled"}


class CliError(Exception):
    """A problem to report in one line with an exit status."""

    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit status 2 (argparse's usage text only with --help)."""
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)", EXIT_USAGE)


# -- formatting ---------------------------------------------------------------------------------------


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _duration(job: dict[str, Any]) -> str:
    start, end = job.get("start_time"), job.get("end_time")
    if not start:
        return "-"
    seconds = int((end or time.time()) - start)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _job_rows(jobs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for job in jobs:
        exit_code = "" if job.get("exit_code") is None else str(job["exit_code"])
        name = job["name"] if job.get("array_index") is None else f"{job['name']}[{job['array_index']}]"
        rows.append(
            [
                job["id"][:8],
                name[:40],
                job["site"],
                state_text(job),
                exit_code,
                _when(job.get("submit_time")),
                _duration(job),
            ]
        )
    return rows


def _show(job: dict[str, Any]) -> str:
    spec = job.get("spec") or {}
    what = (spec.get("command") and shlex.join(spec["command"])) or spec.get("notebook") or "script"
    lines = [
        f"id:        {job['id']}",
        f"name:      {job['name']}",
        f"site:      {job['site']}    native id: {job.get('native_id') or '-'}",
        f"state:     {state_text(job)}" + (f" ({job['state_details']})" if job.get("state_details") else ""),
        f"exit code: {'-' if job.get('exit_code') is None else job['exit_code']}",
        f"runs:      {what}",
        f"submitted: {_when(job.get('submit_time'))}   started: {_when(job.get('start_time'))}   "
        f"ended: {_when(job.get('end_time'))}",
        f"owner:     {job.get('owner') or '-'}    priority: {job.get('priority', 0)}",
        f"folder:    {job.get('folder', '-')}",
        "history:",
    ]
    for entry in job.get("history", []):
        detail = f"  {entry['details']}" if entry.get("details") else ""
        lines.append(f"  {_when(entry['time'])}  {entry['code']} {entry['state']}{detail}")
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


# -- commands ----------------------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> Connection:
    try:
        if args.url:
            token, source = (args.token, "--token") if args.token else (os.environ.get("SWM_TOKEN"), "SWM_TOKEN")
            return Connection(args.url, token, timeout=args.http_timeout, token_source=source)
        if args.token:
            return Connection(token=args.token, timeout=args.http_timeout, token_source="--token")
        return Connection(timeout=args.http_timeout)
    except ServerNotFound as exc:
        raise CliError(f"swm: {exc.message}", EXIT_UNREACHABLE) from None


def _spec_from_options(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return spec_from_options(option_values(args))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _parameter_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _notebook_path(conn: Connection, path: Path) -> str:
    try:
        return server_path(path, server_root_dir(conn.base_url))
    except SwmError as exc:
        raise CliError(exc.message) from None


def cmd_submit(conn: Connection, args: argparse.Namespace) -> int:
    """Submit a script, a notebook (``.ipynb``) or a command (after ``--``)."""
    spec = _spec_from_options(args)
    command = list(args.command or [])
    if args.file and command:
        raise CliError("give a FILE or a command after --, not both", EXIT_USAGE)
    params = {"dry_run": "1"} if args.dry_run else {}
    if args.file:
        path = Path(args.file)
        if args.file != "-" and not path.is_file():
            raise CliError(f"no such file: {args.file}", EXIT_USAGE)
        if path.suffix == ".ipynb":
            spec["notebook"] = _notebook_path(conn, path)
            parameters = {}
            for item in args.param or []:
                name, sep, value = item.partition("=")
                if not sep:
                    raise CliError(f"-p takes NAME=VALUE (got {item!r})", EXIT_USAGE)
                parameters[name] = _parameter_value(value)
            if parameters:
                spec["parameters"] = parameters
        else:
            text = sys.stdin.read() if args.file == "-" else path.read_text()
            spec["script"] = text
            if not _has_name(text):
                spec.setdefault("name", path.stem if args.file != "-" else "stdin")
    elif command:
        spec["command"] = command
    else:
        raise CliError("say what to run: swm submit FILE, or swm submit -- COMMAND ARGS...", EXIT_USAGE)
    if args.param and "notebook" not in spec:
        raise CliError("-p parameters go with a notebook (.ipynb)", EXIT_USAGE)
    key = None if args.dry_run else str(uuid.uuid4())  # one per submission, reused on retries
    answer = conn.request("POST", "jobs", params=params, json_body=spec, idempotency_key=key).json()
    for warning in answer.get("warnings") or []:  # #SWM lines the server ignored
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        _emit(
            args,
            answer,
            f"ok: would submit {answer['job']['name']!r} to {answer['job']['site']}"
            + (f" ({answer['tasks']} tasks)" if answer.get("tasks") else "")
            + (f", estimated cost {answer['cost_estimate']}" if answer.get("cost_estimate") is not None else ""),
        )
        return 0
    _emit(args, answer, answer["id"])
    if args.wait:
        return _wait(conn, args, answer["id"])
    return 0


def _has_name(script: str) -> bool:
    """True if the script names itself (``#SWM name`` or ``#SBATCH --job-name``/``-J``)."""
    from .core.directives import sbatch_job_name

    if any(line.split()[:2] == ["#SWM", "name"] for line in script.splitlines() if line.startswith("#SWM")):
        return True
    return sbatch_job_name(script) is not None


def cmd_jobs(conn: Connection, args: argparse.Namespace) -> int:
    """List jobs (newest first)."""
    params: dict[str, Any] = {
        "state": args.state,
        "site": args.site,
        "name": args.name,
        "since": args.since,
        "limit": args.limit,
        "sort": args.sort,
    }
    if args.array:
        params["array_parent"] = args.array
    elif not args.tasks:
        params["top_level"] = True
    page = conn.get_json("jobs", **params)
    counts = ", ".join(f"{n} {s}" for s, n in page["counts"].items() if n)
    text = table(_job_rows(page["jobs"]), ["ID", "NAME", "SITE", "STATE", "EXIT", "SUBMITTED", "ELAPSED"])
    text += f"\n{len(page['jobs'])} of {page['total']} jobs" + (f" ({counts})" if counts else "")
    _emit(args, page, text)
    return 0


def cmd_show(conn: Connection, args: argparse.Namespace) -> int:
    """Show one job in full."""
    job = conn.get_json(f"jobs/{args.job}")
    _emit(args, job, _show(job))
    return 0


def _for_each_job(
    args: argparse.Namespace, call: Callable[[str], dict[str, Any]], line: Callable[[dict[str, Any]], str]
) -> int:
    """Run ``call`` on each of ``args.jobs``; print a ``line`` for each done and one on stderr for each
    refused (or ``{"done", "failed"}`` with --json); exit 1 if any was refused."""
    done, failed = [], []
    for job_id in args.jobs:
        try:
            done.append(call(job_id))
        except ServerNotFound:
            raise
        except SwmError as exc:
            failed.append({"id": job_id, "message": exc.message, "status": exc.status})
    if args.json:
        print(json.dumps({"done": done, "failed": failed}, indent=2))
    else:
        for answer in done:
            print(line(answer))
        for failure in failed:
            print(f"swm {args.command_name}: {failure['id']}: {failure['message']}", file=sys.stderr)
    return EXIT_REFUSED if failed else 0


def cmd_action(conn: Connection, args: argparse.Namespace) -> int:
    """cancel / hold / release / requeue one or more jobs; exit 1 if any failed."""
    action = args.command_name

    def call(job_id: str) -> dict[str, Any]:
        if action == "cancel":
            return conn.request("DELETE", f"jobs/{job_id}").json()  # type: ignore[no-any-return]
        return conn.post_json(f"jobs/{job_id}/{action}")  # type: ignore[no-any-return]

    return _for_each_job(args, call, lambda job: f"{job['id'][:8]}  {after_action(action, job)}")


def cmd_rm(conn: Connection, args: argparse.Namespace) -> int:
    """Delete final jobs: their records and folders (``DELETE /jobs/{id}?purge=1``); exit 1 if any failed."""

    def line(answer: dict[str, Any]) -> str:
        tasks = answer["jobs"] - 1
        return f"{answer['deleted'][:8]}  deleted" + (f" with its {tasks} tasks" if tasks else "")

    return _for_each_job(
        args, lambda job_id: conn.request("DELETE", f"jobs/{job_id}", params={"purge": "1"}).json(), line
    )


def cmd_logs(conn: Connection, args: argparse.Namespace) -> int:
    """Print a job's output; ``-f`` follows it until the job ends."""
    stream = "stderr" if args.stderr else "stdout"
    offset = 0
    out = sys.stdout.buffer
    delay = 0.2
    while True:
        answer = conn.request("GET", f"jobs/{args.job}/log", params={"stream": stream, "offset": offset})
        if answer.body:
            out.write(answer.body)
            out.flush()
            delay = 0.2
        offset = int(answer.headers.get("x-log-offset", offset + len(answer.body)))
        state = answer.headers.get("x-job-state", "")
        if not args.follow or (state in FINAL and not answer.body):
            return 0
        if not answer.body:
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)


def _wait(conn: Connection, args: argparse.Namespace, job_id: str) -> int:
    deadline = time.monotonic() + args.timeout if getattr(args, "timeout", None) else None
    show = sys.stderr.isatty() and not args.json and not getattr(args, "quiet", False)
    started = time.monotonic()
    delay = 0.1
    last_line = ""
    while True:
        job = conn.get_json(f"jobs/{job_id}")
        if show:
            elapsed = time.monotonic() - started
            line = f"\r{job['id'][:8]} {job['name'][:30]}: {job['state_code']} {job['state']}  {elapsed:6.0f}s"
            if line != last_line:
                sys.stderr.write(line.ljust(len(last_line)))
                sys.stderr.flush()
                last_line = line
        if job["state"] in FINAL:
            if show:
                sys.stderr.write("\n")
            break
        if deadline is not None and time.monotonic() > deadline:
            if show:
                sys.stderr.write("\n")
            print(f"swm wait: job {job_id} is still {job['state']} after {args.timeout}s", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    if args.json:
        print(json.dumps(job, indent=2))
    elif not getattr(args, "wait", False):
        print(f"{job['id'][:8]}  {state_text(job)}  exit code {job.get('exit_code')}")
    if job["state"] == "finished" and job.get("exit_code") is not None:
        return int(job["exit_code"]) & 0xFF
    if job.get("signal"):
        return 128 + int(job["signal"])
    if job.get("exit_code"):
        return int(job["exit_code"]) & 0xFF or 1
    return 1


def cmd_wait(conn: Connection, args: argparse.Namespace) -> int:
    """Wait for a job to end; the exit status is the job's exit code."""
    return _wait(conn, args, args.job)


def cmd_sites(conn: Connection, args: argparse.Namespace) -> int:
    """List the sites (or show one)."""
    if args.site:
        site = conn.get_json(f"sites/{args.site}")
        _emit(args, site, site_text(site))
        return 0
    data = conn.get_json("sites")
    rows = []
    for site in data["sites"]:
        limits = site.get("limits") or {}
        rows.append(
            [
                site["name"] + (" *" if site["name"] == data["default"] else ""),
                site["kind"],
                "yes" if site["healthy"] else f"no: {site['health_message']}"[:60],
                str(limits.get("cpus", "-")),
                str(len(site.get("flavors", []))),
                ", ".join(f"{n} {s}" for s, n in (site.get("counts") or {}).items()) or "-",
            ]
        )
    _emit(args, data, table(rows, ["SITE", "GATE", "HEALTHY", "CPUS", "FLAVORS", "JOBS"]))
    return 0


# -- the parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``swm``."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    common.add_argument("--url", help="server base URL (default: SWM_URL, or the running Jupyter server)")
    common.add_argument("--token", help="server token (default: SWM_TOKEN, or the running server's)")
    common.add_argument("--http-timeout", type=float, default=30.0, help="seconds to wait for an answer (30)")
    parser = _Parser(
        prog="swm", description="Submit and watch jobs of the swm-jupyter workload manager.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "submit",
        parents=[common],
        help="submit a script, notebook, or -- COMMAND",
        description="Submit FILE (a script with #SWM lines, or a .ipynb notebook), or a command given after --.",
    )
    p.add_argument("file", nargs="?", help="script or notebook; - reads a script from stdin")
    add_spec_options(p)
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="notebook parameter (JSON value)")
    p.add_argument("--dry-run", action="store_true", help="check and estimate only")
    p.add_argument("-w", "--wait", action="store_true", help="wait for the job; exit with its exit code")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 124)")
    p.set_defaults(func=cmd_submit, command=None)

    p = sub.add_parser("jobs", parents=[common], help="list jobs")
    p.add_argument("--state", action="append", help="state name or letter, or failed (repeatable, or comma list)")
    p.add_argument("--site")
    p.add_argument("--name", help="substring of the name")
    p.add_argument("--since", help="epoch seconds or ISO time")
    p.add_argument("--sort", default="-submit_time")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--tasks", action="store_true", help="also list array tasks")
    p.add_argument("--array", metavar="JOB", help="list the tasks of this array")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("show", parents=[common], help="show a job")
    p.add_argument("job")
    p.set_defaults(func=cmd_show)

    for name, text in (
        ("cancel", "cancel jobs"),
        ("hold", "hold queued jobs"),
        ("release", "release held jobs"),
        ("requeue", "run jobs again"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("jobs", nargs="+", metavar="JOB")
        p.set_defaults(func=cmd_action)

    p = sub.add_parser("rm", parents=[common], help="delete ended jobs: their records and folders")
    p.add_argument("jobs", nargs="+", metavar="JOB")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("logs", parents=[common], help="print a job's output")
    p.add_argument("job")
    p.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    p.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("wait", parents=[common], help="wait for a job; exit with its exit code")
    p.add_argument("job")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 124)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("sites", parents=[common], help="list sites, or show one")
    p.add_argument("site", nargs="?")
    p.set_defaults(func=cmd_sites)

    from .cli_schedules import add_schedule_parser

    add_schedule_parser(sub, common, _Parser, sys.modules[__name__])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``swm``; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # `swm submit -- cmd args` : everything after -- is the command, whatever it looks like.
    tail: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1 :]
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if tail:
            if args.command_name != "submit" and getattr(args, "schedule_command", None) != "add":
                raise CliError(f"swm {args.command_name or ''}: -- is only for swm submit -- COMMAND", EXIT_USAGE)
            args.command = tail
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(_connect(args), args))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status
    except ServerNotFound as exc:
        print(f"swm: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except SwmError as exc:
        detail = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in exc.errors)
        message = exc.message if not detail or detail in exc.message else f"{exc.message} ({detail})"
        print(f"swm: {message}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
