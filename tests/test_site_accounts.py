"""Sky Port accounts choose the site: a headless manager with several local sites and their accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import SiteUnavailable, ValidationError
from swm_jupyter.core.site_accounts import site_accounts, site_for_account

from .core_helpers import run, running_manager

SITES: dict[str, Any] = {
    "a": {"gate": "local", "cpus": 1, "account": "lab-a"},  # the local gate has no option named account
    "b": {"gate": "local", "cpus": 1},
    "c": {"gate": "local", "cpus": 1, "account": "lab-a"},
    "bad": {"gate": "local", "account": 7},
}


def test_accounts_choose_the_site(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_manager(tmp_path, sites=SITES, default_site="b") as wm:
            assert set(wm.gates) == {"a", "b", "c"}, "a site's account option is not handed to a gate without one"
            assert "account of site 'bad' must be a non-empty string" in wm.gate_errors["bad"]

            async def site_of(**request: Any) -> str:
                job = await wm.submit({"command": ["true"], "hold": True, **request})
                return job.site

            assert await site_of(account="lab-a") == "a", "the first site of that account"
            assert await site_of(account="b") == "b", "a site's account is its name unless configured"
            assert await site_of() == "b", "no account, no site: the default site"
            assert await site_of(site="c", account="elsewhere") == "c", "a named site keeps the job's account"
            with pytest.raises(ValidationError) as caught:
                await site_of(account="nobody")
            assert "no site has the account 'nobody'; known accounts: lab-a, b, bad" in caught.value.message
            assert caught.value.errors[0]["field"] == "account"
            with pytest.raises(SiteUnavailable):
                await site_of(account="bad")
            job = await wm.submit({"command": ["true"], "account": "lab-a"})
            done = await wm.wait(job.id, timeout=30)
            assert done.site == "a" and done.exit_code == 0

        async with running_manager(tmp_path / "again", sites=SITES, default_site="c") as wm:
            job = await wm.submit({"command": ["true"], "hold": True, "account": "lab-a"})
            assert job.site == "c", "the default site, when it has the account"

    run(body())


def test_account_helpers() -> None:
    assert site_accounts(SITES) == {"a": "lab-a", "b": "b", "c": "lab-a", "bad": "bad"}
    assert site_for_account("lab-a", SITES, "x") == "a"
    assert site_for_account("lab-a", SITES, "c") == "c"
    with pytest.raises(ValidationError, match="known accounts: lab-a, b, bad"):
        site_for_account("", SITES, "a")
