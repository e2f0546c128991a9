"""Failed jobs (a non-zero exit, a signal, an error) show as failed in the renderings the widgets use."""

from __future__ import annotations

from swm_jupyter.client import render
from swm_jupyter.widgets.monitor import STATES, _in_state
from swm_jupyter.widgets.timeline import spans

FAILED_JOB = {"id": "a" * 36, "name": "x", "site": "local", "state": "finished", "exit_code": 2, "start_time": 1.0,
              "end_time": 2.0, "submit_time": 0.5}  # fmt: skip
GOOD_JOB = {**FAILED_JOB, "exit_code": 0}


def test_a_non_zero_exit_is_shown_failed_in_red() -> None:
    assert render.job_row(FAILED_JOB)["state"] == "failed" and render.job_row(GOOD_JOB)["state"] == "finished"
    assert render.shown_state({**GOOD_JOB, "signal": 9}) == "failed"
    assert render.shown_state({**FAILED_JOB, "state": "error"}) == "error"
    assert render.STATE_COLORS["failed"] == render.STATE_COLORS["error"]
    assert "swm-state-failed" in render.jobs_html([FAILED_JOB]) and "failed" in render.jobs_text([FAILED_JOB])
    assert ": failed (" in render.job_text(FAILED_JOB)
    assert "swm-state-failed" in render.job_html(FAILED_JOB)
    assert spans(FAILED_JOB, 3.0)[-1][0] == "failed" and spans(GOOD_JOB, 3.0)[-1][0] == "finished"


def test_the_monitor_filters_failed_jobs_as_the_server_does() -> None:
    assert "failed" in STATES
    assert _in_state(FAILED_JOB, "failed") and not _in_state(GOOD_JOB, "failed")
    assert _in_state({**GOOD_JOB, "state": "error"}, "failed") and _in_state(GOOD_JOB, "finished")


def test_an_action_shows_the_state_the_job_goes_to() -> None:
    running = {"state": "running", "state_code": "R"}
    assert render.after_action("cancel", running) == "C canceled (requested; running until its site has done it)"
    assert render.after_action("requeue", running).startswith("Q queued (requested")
    assert render.after_action("cancel", {"state": "canceled", "state_code": "C"}) == "C canceled"
    assert render.after_action("release", {"state": "queued", "state_code": "Q"}) == "Q queued"
    assert render.state_text(FAILED_JOB | {"state_code": "F"}) == "F failed"


def test_a_job_handle_says_whether_it_failed() -> None:
    from swm_jupyter.client import Client
    from swm_jupyter.client.api import Job

    client = Client("http://127.0.0.1:9", "unused", timeout=1)
    assert Job(client, FAILED_JOB).failed and not Job(client, GOOD_JOB).failed
    assert Job(client, {**GOOD_JOB, "state": "error"}).failed
    assert "failed" in repr(Job(client, FAILED_JOB))
