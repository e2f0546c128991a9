"""``%swm schedule ...`` and ``%%swm schedule add``: schedules from a notebook (see :mod:`.magics`).

Talks to the server through the REST API (:class:`~swm_jupyter.client.schedules.ScheduleApi`) with
the connection of the magics' client; never touches the kernel's event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from .client.schedules import SCHEDULE_HEADER, ScheduleApi, schedule_rows, show_text, table, when_text

SCHEDULE_USAGE = """\
%swm schedule add FILE (--every 10m | --cron '0 9 * * *' [--tz ZONE]) [-p NAME VALUE ...] [options]
%%swm schedule add (--every ... | --cron ...) [options]      the cell is the job script
%swm schedule list | show ID | pause ID | resume ID | run ID | rm ID
options: --name X --site S --max-concurrent N --queue --catch-up none|last|all --keep-last N
         --notify-on failure|end|never --webhook URL --email ADDRESS --paused
"""

ACTIONS = ("add", "list", "show", "pause", "resume", "run", "rm")


def add_schedule_arguments(parser: Any) -> None:
    """The arguments of ``%swm schedule`` on the magics' ``schedule`` parser."""
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("target", nargs="?", help="add: script or notebook; others: schedule id")
    parser.add_argument("--every")
    parser.add_argument("--cron")
    parser.add_argument("--tz")
    parser.add_argument("--name")
    parser.add_argument("--site")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--max-concurrent", type=int)
    parser.add_argument("--queue", action="store_true")
    parser.add_argument("--catch-up", choices=["none", "last", "all"])
    parser.add_argument("--keep-last", type=int)
    parser.add_argument("--notify-on", choices=["failure", "end", "never"])
    parser.add_argument("--webhook")
    parser.add_argument("--email", action="append")
    parser.add_argument("--paused", action="store_true")


def _usage(message: str) -> UsageError:
    return UsageError(f"%swm schedule: {message}\n\n{SCHEDULE_USAGE}")


def _job(client: Any, args: Any, cell: str | None) -> dict[str, Any]:
    from .magics import parse_value

    job: dict[str, Any] = {}
    if args.site:
        job["site"] = args.site
    if cell is not None:
        if args.target:
            raise _usage("the cell is the script; do not also give a file")
        if not cell.strip():
            raise _usage("the cell is empty; write the job script in it")
        job["script"] = cell
    elif args.target:
        path = Path(args.target).expanduser()
        if not path.is_file():
            raise _usage(f"no file {args.target!r} here")
        if path.suffix == ".ipynb":
            from .client.discovery import server_path, server_root_dir

            job["notebook"] = server_path(path, server_root_dir(client.url + "/"))
        else:
            job["script"] = path.read_text()
    else:
        raise _usage("say what to run: a script or notebook file, or %%swm schedule add with the script in the cell")
    parameters = {name: parse_value(value) for name, value in args.parameter}
    if parameters:
        if "notebook" not in job:
            raise _usage("-p parameters go with a notebook (.ipynb)")
        job["parameters"] = parameters
    return job


def do_schedule(client: Any, args: Any, cell: str | None) -> None:
    """Carry out ``%swm schedule ACTION ...`` with ``client`` (a :class:`~swm_jupyter.client.Client`)."""
    api = ScheduleApi(client._connection)
    if cell is not None and args.action != "add":
        raise _usage(f"only 'add' takes a cell; use %swm schedule {args.action}")
    if args.action == "list":
        schedules = api.list()
        print(table(schedule_rows(schedules), SCHEDULE_HEADER) if schedules else "no schedules")
        return
    if args.action == "add":
        request: dict[str, Any] = {"job": _job(client, args, cell)}
        if bool(args.every) == bool(args.cron):
            raise _usage("say when it runs: --every 10m, or --cron '0 9 * * *' [--tz ZONE]")
        for key, value in (
            ("every", args.every),
            ("cron", args.cron),
            ("timezone", args.tz),
            ("name", args.name),
            ("max_concurrent", args.max_concurrent),
            ("catch_up", args.catch_up),
            ("keep_last", args.keep_last),
            ("notify_on", args.notify_on),
            ("webhook", args.webhook),
            ("email", args.email),
        ):
            if value is not None:
                request[key] = value
        if args.queue:
            request["overlap"] = "queue"
        if args.paused:
            request["paused"] = True
        made = api.create(request)
        print(f"schedule {made['id']} added: {made['name']}, {when_text(made)}")
        return
    if not args.target:
        raise _usage(f"{args.action} needs a schedule id (see %swm schedule list)")
    if args.action == "show":
        print(show_text(api.show(args.target), api.runs(args.target, limit=10)))
    elif args.action in ("pause", "resume"):
        changed = api.pause(args.target) if args.action == "pause" else api.resume(args.target)
        print(f"schedule {changed['id'][:8]} {'paused' if changed['paused'] else 'resumed'}")
    elif args.action == "run":
        run = api.run(args.target)
        print(f"run launched: job {run.get('job_id')}" if run.get("job_id") else f"{run['status']}: {run['details']}")
    elif args.action == "rm":
        api.delete(args.target)
        print(f"schedule {args.target} deleted")
