"""``swm schedule add|list|show|pause|resume|rm|run``: schedules from the command line.

``swm schedule add`` takes what ``swm submit`` takes (a script, a notebook with ``-p``, or a
command after ``--``) plus when it runs (``--cron`` with ``--tz``, or ``--every``) and the
schedule's options. A webhook token is read from an environment variable (``--webhook-token-env``),
never from the command line, where other users of the machine could see it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .client.connection import Connection
from .client.schedules import SCHEDULE_HEADER, ScheduleApi, schedule_rows, show_text, table
from .core.jobfields import add_spec_options, option_values, spec_from_options

#: The ``swm`` module running (``swm_jupyter.cli``, or ``__main__`` under ``python -m``): its
#: ``CliError`` is the one its ``main`` catches.
_CLI: dict[str, Any] = {}


#: The job options ``swm schedule add`` takes (those of ``swm submit``, from the one definition of a
#: job's fields; ``--name`` names the schedule).
JOB_OPTIONS = ("site", "cpus", "mem", "walltime", "workdir", "env")


def _cli() -> Any:
    if "module" not in _CLI:
        from . import cli

        _CLI["module"] = cli
    return _CLI["module"]


def _job_request(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    cli = _cli()
    try:
        job = spec_from_options(option_values(args, only=JOB_OPTIONS))
    except ValueError as exc:
        raise cli.CliError(str(exc), cli.EXIT_USAGE) from None
    command = list(args.command or [])
    if args.file and command:
        raise cli.CliError("give a FILE or a command after --, not both", cli.EXIT_USAGE)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise cli.CliError(f"no such file: {args.file}", cli.EXIT_USAGE)
        if path.suffix == ".ipynb":
            job["notebook"] = cli._notebook_path(conn, path)
            parameters = {}
            for item in args.param or []:
                name, sep, value = item.partition("=")
                if not sep:
                    raise cli.CliError(f"-p takes NAME=VALUE (got {item!r})", cli.EXIT_USAGE)
                parameters[name] = cli._parameter_value(value)
            if parameters:
                job["parameters"] = parameters
        else:
            job["script"] = path.read_text()
    elif command:
        job["command"] = command
    else:
        raise cli.CliError(
            "say what to run: swm schedule add FILE --every 1h, or swm schedule add --every 1h -- COMMAND",
            cli.EXIT_USAGE,
        )
    if args.param and "notebook" not in job:
        raise cli.CliError("-p parameters go with a notebook (.ipynb)", cli.EXIT_USAGE)
    return job


def _options(args: argparse.Namespace) -> dict[str, Any]:
    cli = _cli()
    request: dict[str, Any] = {}
    if args.cron and args.every:
        raise cli.CliError("give --cron or --every, not both", cli.EXIT_USAGE)
    if args.cron:
        request["cron"] = args.cron
    if args.every:
        request["every"] = args.every
    if args.tz:
        request["timezone"] = args.tz
    for key in ("name", "catch_up", "start", "end", "notify_on", "keep_last", "max_concurrent"):
        value = getattr(args, key, None)
        if value is not None:
            request[key] = value
    if args.queue:
        request["overlap"] = "queue"
    if args.paused:
        request["paused"] = True
    if args.webhook:
        hook: dict[str, Any] = {"url": args.webhook}
        if args.webhook_token_env:
            token = os.environ.get(args.webhook_token_env)
            if not token:
                raise cli.CliError(f"--webhook-token-env: ${args.webhook_token_env} is not set", cli.EXIT_USAGE)
            hook["token"] = token
        request["webhook"] = hook
    if args.email:
        request["email"] = args.email
    return request


def cmd_schedule(conn: Connection, args: argparse.Namespace) -> int:
    """Run one ``swm schedule`` subcommand."""
    cli = _cli()
    api = ScheduleApi(conn)
    action = args.schedule_command
    if action == "add":
        request = _options(args)
        if "cron" not in request and "every" not in request:
            raise cli.CliError("say when it runs: --every 10m, or --cron '0 9 * * *' [--tz ZONE]", cli.EXIT_USAGE)
        request["job"] = _job_request(conn, args)
        made = api.create(request)
        cli._emit(args, made, made["id"])
    elif action == "list":
        schedules = api.list()
        cli._emit(args, schedules, table(schedule_rows(schedules), SCHEDULE_HEADER) if schedules else "no schedules")
    elif action == "show":
        schedule = api.show(args.schedule)
        runs = api.runs(args.schedule, limit=args.runs)
        cli._emit(args, {**schedule, "runs": runs}, show_text(schedule, runs))
    elif action in ("pause", "resume"):
        changed = api.pause(args.schedule) if action == "pause" else api.resume(args.schedule)
        cli._emit(args, changed, f"{changed['id'][:8]} {'paused' if changed['paused'] else 'resumed'}")
    elif action == "rm":
        for schedule_id in args.schedules:
            api.delete(schedule_id)
            if not args.json:
                print(f"{schedule_id} deleted")
        if args.json:
            print(json.dumps({"deleted": args.schedules}))
    elif action == "run":
        run = api.run(args.schedule)
        cli._emit(args, run, run.get("job_id") or f"{run.get('status')}: {run.get('details')}")
    return 0


def add_schedule_parser(
    sub: Any, common: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser], cli: Any
) -> None:
    """Add ``swm schedule ...`` to the subcommands ``sub`` of ``swm`` (``cli``: the running ``swm`` module)."""
    _CLI["module"] = cli
    schedule = sub.add_parser(
        "schedule", parents=[common], help="recurring jobs and notebooks: add, list, show, pause, resume, rm, run"
    )
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", parser_class=parser_class)
    schedule.set_defaults(func=_needs_action)

    p = actions.add_parser(
        "add",
        parents=[common],
        help="add a schedule",
        description="Run FILE (a script or a .ipynb notebook) or a command given after -- on a cron expression "
        "or an interval.",
    )
    p.add_argument("file", nargs="?", help="script or notebook")
    p.add_argument("--cron", help="cron expression, e.g. '0 9 * * 1-5'")
    p.add_argument("--tz", help="time zone of --cron, e.g. Europe/Berlin (default UTC)")
    p.add_argument("--every", help="interval, e.g. 10m, 1h30m, 30s")
    p.add_argument("-n", "--name")
    add_spec_options(p, only=JOB_OPTIONS)
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="notebook parameter (JSON value)")
    p.add_argument("--max-concurrent", type=int, help="runs active at once (default 1)")
    p.add_argument("--queue", action="store_true", help="queue a due run behind active ones instead of skipping it")
    p.add_argument("--catch-up", choices=["none", "last", "all"], help="due times missed while down (default last)")
    p.add_argument("--keep-last", type=int, help="ended runs kept (older ones deleted with their folders)")
    p.add_argument("--start", help="no run before (ISO time or epoch seconds)")
    p.add_argument("--end", help="no run after (ISO time or epoch seconds)")
    p.add_argument("--paused", action="store_true", help="add it paused")
    p.add_argument("--notify-on", choices=["failure", "end", "never"], help="which ends notify (default failure)")
    p.add_argument("--webhook", metavar="URL", help="POST JSON to URL when a run ends (see --notify-on)")
    p.add_argument("--webhook-token-env", metavar="VAR", help="send $VAR as the webhook's bearer token")
    p.add_argument("--email", action="append", metavar="ADDRESS", help="e-mail on run ends (repeatable)")
    p.set_defaults(func=cmd_schedule, command=None)

    p = actions.add_parser("list", parents=[common], help="list schedules")
    p.set_defaults(func=cmd_schedule)
    p = actions.add_parser("show", parents=[common], help="show a schedule and its newest runs")
    p.add_argument("schedule")
    p.add_argument("--runs", type=int, default=10, help="how many runs to show (10)")
    p.set_defaults(func=cmd_schedule)
    for name, text in (("pause", "pause a schedule"), ("resume", "resume a paused schedule"), ("run", "run now")):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("schedule")
        p.set_defaults(func=cmd_schedule)
    p = actions.add_parser("rm", parents=[common], help="delete schedules (their jobs stay)")
    p.add_argument("schedules", nargs="+", metavar="SCHEDULE")
    p.set_defaults(func=cmd_schedule)


def _needs_action(conn: Connection, args: argparse.Namespace) -> int:
    cli = _cli()
    raise cli.CliError("swm schedule: say what to do: add, list, show, pause, resume, rm, run", cli.EXIT_USAGE)


__all__ = ["add_schedule_parser", "cmd_schedule"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(_cli().main(["schedule", *sys.argv[1:]]))
