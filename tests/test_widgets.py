"""Widgets without a browser: their traits and callbacks, fed by a real server's events websocket."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from swm_jupyter.client import Client
from swm_jupyter.widgets import JobMonitor, JobView, SubmitForm, Timeline, cost_estimate, gantt_svg

from .notebook_fixtures import Server, swm_server  # noqa: F401 - fixture


def until(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait until ``check()`` is true (updates arrive on the events thread)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture
def client(swm_server: Server) -> Iterator[Client]:  # noqa: F811
    with Client(swm_server.url, swm_server.token) as c:
        yield c


def test_job_monitor_follows_events_and_acts(client: Client) -> None:
    monitor = JobMonitor(client, name="mon-")
    monitor.wait_pending()
    assert "local" in monitor.site_box.options
    sleeper = client.submit(script="sleep 60", name="mon-sleep")
    until(lambda: sleeper.id in monitor.visible and monitor.jobs[sleeper.id]["state"] == "running")
    row = monitor.rows[sleeper.id]
    assert "running" in row.cells["state"].value and "#2196f3" in row.cells["state"].value
    assert not row.buttons["cancel"].disabled and row.buttons["requeue"].disabled
    row.buttons["cancel"].click()
    monitor.wait_pending()
    until(lambda: monitor.jobs[sleeper.id]["state"] == "canceled")
    assert row.buttons["cancel"].disabled and not row.buttons["requeue"].disabled
    # filters: a state filter hides the canceled job
    monitor.state_box.value = "running"
    monitor.wait_pending()
    assert sleeper.id not in monitor.visible
    monitor.state_box.value = "(all)"
    monitor.wait_pending()
    assert sleeper.id in monitor.visible
    # hold / release on a held job
    held = client.submit(script="echo released", name="mon-held", hold=True)
    until(lambda: held.id in monitor.rows)
    monitor.rows[held.id].buttons["release"].click()
    monitor.wait_pending()
    until(lambda: monitor.jobs[held.id]["state"] == "finished")
    # logs opens a live JobView below the table
    monitor.rows[held.id].buttons["logs"].click()
    monitor.wait_pending()
    view = monitor.detail.children[0]
    assert isinstance(view, JobView) and view.log == "released\n"
    assert "mon-sleep" in monitor.text() and "<table" in monitor.html()
    bundle = monitor._repr_mimebundle_()
    assert "mon-held" in bundle["text/html"] and "mon-held" in bundle["text/plain"]
    monitor.close()


def test_job_view_live_log_outputs_and_cancel(client: Client) -> None:
    job = client.submit(script="for i in 1 2 3; do echo tick $i; sleep 0.4; done; echo x > result.txt", name="view-job")
    view = JobView(job)
    until(lambda: view.state == "finished" and view.files)
    until(lambda: view.log == "tick 1\ntick 2\ntick 3\n")
    assert view.progress.value == view.progress.max and view.progress.bar_style == "success"
    assert "result.txt" in {f["path"] for f in view.files} and "result.txt" in view.files_html.value
    assert view.cancel_button.disabled
    assert "view-job" in view.text() and "tick 3" in view.html()
    assert [h["state"] for h in view.job_data["history"]][-1] == "finished"
    view.close()
    long = client.submit(script="sleep 60", name="view-long")
    view = JobView(long)
    view.cancel_button.click()
    view.wait_pending()
    until(lambda: view.state == "canceled")
    assert view.progress.bar_style == "danger"
    view.close()


def test_submit_form_submits_and_estimates(client: Client) -> None:
    form = SubmitForm(client)
    form.loaded.result(10)
    assert form.site == "local" and form.cpus.max == form.site_info["limits"]["cpus"]
    assert form.cloud_box.layout.display == "none" and form.cost is None
    form.name.value = "form-job"
    form.script.value = "echo from the form"
    form.submit().result(10)
    assert form.last_job_id and "submitted" in form.status
    job = client.job(form.last_job_id)
    assert job.wait(30, progress=False).logs() == "from the form\n"
    form.cpus.value = 10_000  # bounded by the site's limit
    assert form.cpus.value == form.cpus.max
    form.mode.value = "file"
    form.path.value = "missing.sh"
    form.submit()
    form.wait_pending()
    assert form.status.startswith("error: submit") and "missing.sh" in form.status
    # a cloud site's flavors give a cost estimate: price x nodes x walltime
    form.site_info = {
        "name": "cloud",
        "limits": {"nodes": 4},
        "flavors": [{"id": "m", "name": "medium", "cpus": 4, "price": 0.5}],
    }
    form.sites = [form.site_info]
    form._choose_site("cloud")
    form.nodes.value = 2
    form.walltime.value = "3:00:00"
    assert form.flavor == "m" and form.cost == 3.0 and "3" in form.cost_html.value
    assert "medium" in form.html() and "estimated cost 3" in form.text()
    assert cost_estimate(1.0, 1, "90m") == 1.5 and cost_estimate(None, 1, "1h") is None
    form.close()


def test_timeline_draws_session_jobs(client: Client) -> None:
    first = client.submit(script="sleep 0.5", name="tl-a")
    second = client.submit(script="sleep 0.2", name="tl-b")
    timeline = Timeline(client)
    timeline.loaded.result(10)
    assert timeline.job_ids == client.session_jobs
    first.wait(30, progress=False)
    second.wait(30, progress=False)
    until(lambda: all(timeline.jobs.get(j.id, {}).get("state") == "finished" for j in (first, second)))
    assert timeline.svg.count("<rect") >= 4 and "tl-a" in timeline.svg
    assert "tl-b" in timeline.text() and "queued" in timeline.text() and "finished" in timeline.text()
    assert "<svg" in timeline._repr_mimebundle_()["text/html"]
    assert gantt_svg([]) == "<i>no jobs in this session yet</i>"
    timeline.close()


def test_a_deleted_job_leaves_the_monitor_and_its_handle_says_so(client: Client) -> None:
    monitor = JobMonitor(client, name="gone-")
    try:
        job = client.submit(command=["true"], name="gone-1")
        job.wait(timeout=30, progress=False)
        until(lambda: job.id in monitor.visible)
        seen: list[dict] = []
        client.events().add_listener(seen.append)
        # As `swm rm` does, from another client: this one learns it from the events stream only.
        with Client(client.url, client.token) as other:
            other._connection.request("DELETE", f"jobs/{job.id}", params={"purge": "1"})
        until(lambda: job.id not in monitor.visible)
        assert job.id not in monitor.jobs
        until(lambda: job.deleted)
        assert any(m.get("type") == "job_deleted" and m["job"]["id"] == job.id for m in seen)
    finally:
        monitor.stop()
