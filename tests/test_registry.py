"""Gate lookup: entry points, dotted paths, and a broken gate reported when its site is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from swm_jupyter.core.errors import SiteUnavailable
from swm_jupyter.core.gate_registry import available_gates, load_gate_class
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.local import LocalGate

from .core_helpers import run, with_manager


def test_entry_point_and_dotted_path() -> None:
    assert "local" in available_gates()
    assert load_gate_class("local") is LocalGate
    assert load_gate_class("swm_jupyter.gates.local:LocalGate") is LocalGate
    assert load_gate_class("swm_jupyter.gates.local.LocalGate") is LocalGate


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("warp-drive", "no gate named 'warp-drive'"),
        ("no_such_module:Gate", "failed to load: ModuleNotFoundError"),
        ("swm_jupyter.core.model:Job", "is not a Gate subclass"),
    ],
)
def test_bad_gates_say_what_exists(name: str, needle: str) -> None:
    with pytest.raises(SiteUnavailable) as caught:
        load_gate_class(name)
    assert needle in caught.value.message
    if "not a Gate" not in needle:
        assert "available gates: " in caught.value.message and "local" in caught.value.message


def test_a_broken_site_is_reported_when_used_and_others_work(tmp_path: Path) -> None:
    sites = {
        "local": {"gate": "local"},
        "broken": {"gate": "no_such_module:Gate"},
        "misconfigured": {"gate": "local", "no_such_option": 1},
        "mistyped": {"gate": "local", "cpus": "many"},
    }

    async def body(wm: WorkloadManager) -> None:
        with pytest.raises(SiteUnavailable, match="failed to load"):
            await wm.submit({"command": ["true"], "site": "broken"})
        with pytest.raises(SiteUnavailable, match="unknown option no_such_option for gate 'local'; its options: "):
            await wm.submit({"command": ["true"], "site": "misconfigured"})
        with pytest.raises(SiteUnavailable, match="'mistyped' is misconfigured"):
            await wm.submit({"command": ["true"], "site": "mistyped"})
        described = {s["name"]: s for s in await wm.describe_sites()}
        assert described["broken"]["healthy"] is False
        assert "failed to load" in described["broken"]["health_message"]
        job = await wm.submit({"command": ["true"]})
        assert (await wm.wait(job.id, 30)).exit_code == 0

    run(with_manager(tmp_path, body, sites=sites))


class FlakyGate(LocalGate):
    """A local gate whose site cannot be reached for its first two hand-overs: the first call
    raises, the second answers each job with the error (the two ways a gate refuses a batch)."""

    refusals = 0

    async def submit_many(self, jobs):  # type: ignore[no-untyped-def]
        if FlakyGate.refusals < 2:
            FlakyGate.refusals += 1
            if FlakyGate.refusals == 1:
                raise SiteUnavailable("connection refused (test)")
            return [SiteUnavailable("connection refused (test)") for _ in jobs]
        return await super().submit_many(jobs)


def test_an_unreachable_site_requeues_the_job_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swm_jupyter.core import launching as launching_module

    monkeypatch.setattr(launching_module, "SITE_RETRY_SECONDS", 0.3)
    FlakyGate.refusals = 0

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": ["sh", "-c", "exit 6"]})
        done = await wm.wait(job.id, 30)
        assert done.state is JobState.FINISHED and done.exit_code == 6
        assert FlakyGate.refusals == 2
        details = [h.details for h in done.history if h.state is JobState.QUEUED]
        assert details.count("site unreachable, will retry: connection refused (test)") == 2

    run(with_manager(tmp_path, body, sites={"local": {"gate": "tests.test_registry:FlakyGate"}}))
