"""The ``%swm`` line magic and ``%%swm`` cell magic (``%load_ext swm_jupyter``).

Every subcommand talks to the server through the shared :class:`~swm_jupyter.client.Client`; none
runs anything on the kernel's event loop. ``submit`` returns at once with a ``Job`` handle (shown as
a live view); only ``wait`` and ``logs -f`` wait, for the cell, as asked (interrupt to stop waiting).
"""

from __future__ import annotations

import ast
import shlex
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from .client import render
from .client.api import Client, Job
from .client.errors import SwmError
from .core.jobfields import add_spec_options, option_help, option_values, spec_from_options

USAGE = f"""\
%%swm submit [options] [--wait]       the cell is the job script (#SWM lines allowed)
%swm submit FILE [options] [--wait]   submit a script file (or a .ipynb as a notebook job)
%swm notebook PATH [-p NAME VALUE ...] [options] [--wait]
                                      run a notebook headless with parameters
%swm jobs [--state S] [--site S] [--name TEXT] [--limit N]
%swm show ID                          a job's live view
%swm cancel ID [ID ...]
%swm hold ID [ID ...] | release ID [ID ...] | requeue ID [ID ...]
%swm logs ID [-f] [--stderr]          print a job's output (-f: follow until it ends)
%swm wait ID [ID ...] [--timeout S]   wait until the jobs end
%swm sites                            the configured sites
%swm monitor                          a live job table (widget)
%swm schedule add|list|show|pause|resume|run|rm ...   recurring jobs (%swm schedule for its usage)

options: {option_help()}
`job = %swm submit ...` keeps the Job handle (.state, .wait(), .logs(), .cancel(), .files(), .fetch(p)).
"""


class _Parser(MagicArgumentParser):
    """An argparse parser whose errors are ``UsageError`` carrying the whole usage text."""

    def error(self, message: str) -> Any:
        raise UsageError(f"%swm {self.prog.split()[-1]}: {message}\n\n{USAGE}")


def _resource_options(parser: _Parser) -> None:
    add_spec_options(parser)
    parser.add_argument("--wait", action="store_true", help="wait for the job to end")


def _parsers() -> dict[str, _Parser]:
    parsers: dict[str, _Parser] = {}

    def make(name: str) -> _Parser:
        parser = _Parser(prog=f"%swm {name}", add_help=False)
        parsers[name] = parser
        return parser

    submit = make("submit")
    submit.add_argument("file", nargs="?", help="script file (line magic)")
    _resource_options(submit)
    notebook = make("notebook")
    notebook.add_argument("path")
    notebook.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    _resource_options(notebook)
    jobs = make("jobs")
    jobs.add_argument("--state")
    jobs.add_argument("--site")
    jobs.add_argument("--name")
    jobs.add_argument("--limit", type=int, default=50)
    make("show").add_argument("id")
    for action in ("cancel", "hold", "release", "requeue"):
        make(action).add_argument("ids", nargs="+")
    logs = make("logs")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--stderr", action="store_true")
    wait = make("wait")
    wait.add_argument("ids", nargs="+")
    wait.add_argument("--timeout", type=float)
    make("sites")
    make("monitor")
    from .magics_schedules import add_schedule_arguments

    add_schedule_arguments(make("schedule"))
    return parsers


def parse_value(text: str) -> Any:
    """A parameter value: a Python literal if it reads as one (``3``, ``0.5``, ``[1, 2]``), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@magics_class
class SwmMagics(Magics):
    """``%swm`` and ``%%swm``: submit, watch and collect jobs from a notebook."""

    def __init__(self, shell: Any = None, client: Client | None = None) -> None:
        """Register on ``shell``; ``client`` defaults to the shared one, found on first use."""
        super().__init__(shell)
        self._client = client
        self._parsers = _parsers()

    @property
    def client(self) -> Client:
        """The client the magics use."""
        if self._client is None:
            from .widgets.base import default_client

            try:
                self._client = default_client()
            except SwmError as exc:
                raise UsageError(f"{exc.message}\n\n{USAGE}") from None
        return self._client

    @line_cell_magic
    def swm(self, line: str, cell: str | None = None) -> Any:
        """Submit and watch swm jobs.

        Usage::

            %%swm submit [--site S] [--cpus N] [--mem M] [--gpus G] [--walltime T] [--name X] [--wait]
            %swm submit FILE | notebook PATH -p NAME VALUE | jobs | show ID | cancel ID... | logs ID [-f]
            %swm wait ID... | sites | monitor
        """
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%swm: {exc}\n\n{USAGE}") from None
        if not words:
            raise UsageError(f"%swm needs a subcommand\n\n{USAGE}")
        command, rest = words[0], words[1:]
        parser = self._parsers.get(command)
        if parser is None:
            raise UsageError(f"%swm: unknown subcommand {command!r}\n\n{USAGE}")
        if cell is not None and command not in ("submit", "schedule"):
            raise UsageError(f"%%swm {command}: only 'submit' takes a cell; use %swm {command}\n\n{USAGE}")
        args = parser.parse_args(rest)
        return getattr(self, f"_do_{command}", self._do_action)(args, cell, command)

    # subcommands --------------------------------------------------------------------------------
    def _fields(self, args: Any) -> dict[str, Any]:
        try:
            return spec_from_options(option_values(args))
        except ValueError as exc:
            raise UsageError(f"%swm: {exc}\n\n{USAGE}") from None

    def _finish_submit(self, job: Job, args: Any) -> Job:
        for warning in job.data.get("warnings") or []:  # #SWM lines the server ignored
            print(f"warning: {warning}", file=sys.stderr)
        if args.wait:
            job.wait()
        return job

    def _do_submit(self, args: Any, cell: str | None, _: str) -> Job:
        fields = self._fields(args)
        if cell is not None:
            if args.file:
                raise UsageError(f"%%swm submit: the cell is the script; do not also give a file\n\n{USAGE}")
            if not cell.strip():
                raise UsageError(f"%%swm submit: the cell is empty; write the job script in it\n\n{USAGE}")
            return self._finish_submit(self.client.submit(fields, script=cell), args)
        if not args.file:
            raise UsageError(f"%swm submit: give a FILE, or use %%swm submit with the script in the cell\n\n{USAGE}")
        path = Path(args.file).expanduser()
        if path.suffix == ".ipynb":
            return self._finish_submit(self.client.submit_notebook(path, {}, spec=fields), args)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"%swm submit: cannot read {args.file}: {exc.strerror}\n\n{USAGE}") from None
        return self._finish_submit(self.client.submit(fields, script=text), args)

    def _do_notebook(self, args: Any, _cell: str | None, _: str) -> Job:
        parameters = {name: parse_value(value) for name, value in args.parameter}
        for name in parameters:
            if not name.isidentifier():
                raise UsageError(f"%swm notebook: parameter name {name!r} is not a Python identifier\n\n{USAGE}")
        if not Path(args.path).expanduser().is_file():
            raise UsageError(f"%swm notebook: no notebook {args.path!r} here\n\n{USAGE}")
        job = self.client.submit_notebook(args.path, parameters, spec=self._fields(args))
        return self._finish_submit(job, args)

    def _do_jobs(self, args: Any, _cell: str | None, _: str) -> Any:
        return self.client.jobs(state=args.state, site=args.site, name=args.name, limit=args.limit)

    def _do_show(self, args: Any, _cell: str | None, _: str) -> Job:
        return self.client.job(args.id)

    def _do_action(self, args: Any, _cell: str | None, command: str) -> None:
        failed = []
        for job_id in args.ids:
            try:
                data = self.client.cancel(job_id) if command == "cancel" else self.client.act(job_id, command)
                print(f"{command}: {job_id} is {render.after_action(command, data)}")
            except SwmError as exc:
                failed.append(f"{job_id}: {exc}")
        if failed:
            raise SwmError(f"%swm {command} failed for " + "; ".join(failed))

    def _do_logs(self, args: Any, _cell: str | None, _: str) -> None:
        job = self.client.job(args.id)
        stream = "stderr" if args.stderr else "stdout"
        if args.follow:
            job.tail(follow=True, lines=None, stream=stream)
        else:
            print(job.logs(stream), end="")

    def _do_wait(self, args: Any, _cell: str | None, _: str) -> Job | list[Job]:
        jobs = [self.client.job(i) for i in args.ids]
        for job in jobs:
            job.wait(timeout=args.timeout)
        return jobs[0] if len(jobs) == 1 else jobs

    def _do_sites(self, _args: Any, _cell: str | None, _: str) -> Any:
        return self.client.sites()

    def _do_schedule(self, args: Any, cell: str | None, _: str) -> None:
        from .magics_schedules import do_schedule

        do_schedule(self.client, args, cell)

    def _do_monitor(self, _args: Any, _cell: str | None, _: str) -> Any:
        from .widgets import JobMonitor

        return JobMonitor(self.client)


SwmMagics.swm.__doc__ = f"Submit and watch swm jobs.\n\n{USAGE}"


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%swm`` magics on ``ipython`` (``%load_ext swm_jupyter``)."""
    ipython.register_magics(SwmMagics(ipython))
