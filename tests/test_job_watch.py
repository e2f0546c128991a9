"""JobWatch and the spawner's ready-line scan: a server that prints a lot before it is ready costs the hub no
more than its output (each line looked at once, only the unfinished last line kept)."""

from __future__ import annotations

import json
import logging

from swm_jupyter.hub.job_watch import MAX_LINE, JobWatch, OutputLines
from swm_jupyter.hub.server_job import READY_MARKER
from swm_jupyter.hub.spawner import ready_address


def log_message(job_id: str, text: str) -> str:
    return json.dumps({"type": "log", "job_id": job_id, "stream": "stdout", "data": text})


def test_a_chatty_server_is_scanned_line_by_line_and_its_ready_line_found() -> None:
    watch = JobWatch("http://127.0.0.1:1/swm/api/v1/", "token", "job-1", logging.getLogger("test"))
    scanned = 0
    for _ in range(2000):  # 2000 pieces of 5 KB output (10 MB), in pieces that cut lines anywhere
        watch._take(log_message("job-1", ("x" * 999 + "\n") * 5 + "partial-"))
        taken = watch.take()
        scanned += len(taken)
        assert ready_address(taken) is None
        assert len(watch.stdout) == 0 and len(watch._lines._tail) <= MAX_LINE
    assert scanned >= 2000 * 5 * 1000, "every complete line was handed out once"
    watch._take(log_message("job-1", f"\n{READY_MARKER} {json.dumps({'host': 'node1', 'port': 8888})}"))
    assert ready_address(watch.take()) is None, "not before its line is complete"
    watch._take(log_message("job-1", "\nmore\n"))
    assert ready_address(watch.take()) == ("node1", 8888)


def test_output_lines_keep_only_the_end_of_an_endless_line() -> None:
    lines = OutputLines()
    for _ in range(100):
        assert lines.feed(b"y" * 10_000) == b""
    assert len(lines._tail) == MAX_LINE
    assert lines.feed(b"\nnext line\nrest") == b"y" * MAX_LINE + b"\nnext line\n"
    assert lines.feed(b"\n") == b"rest\n"
