"""Start-up messages: a data_dir that cannot be written is named, with the reason, in the log and the API's 503."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.gates.local import LocalGate
from tests.conftest import body


class TestUnwritableDataDir:
    """A data_dir the server cannot write."""

    @pytest.fixture(params=["file-in-the-way", "unwritable"])
    def swm_data_dir(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
        """A data_dir the server cannot write, and the reason the system gives.

        ``file-in-the-way``: a regular file where a parent folder should be. ``unwritable``: a read-only
        file system when running as root (root may write any folder), else a folder of mode 0500.
        """
        if request.param == "file-in-the-way":
            (tmp_path / "plain-file").write_text("not a folder\n")
            yield tmp_path / "plain-file" / "swm", "Not a directory"
            return
        folder = tmp_path / "locked"
        folder.mkdir()
        if os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
            try:
                yield folder, "Read-only file system"
            finally:
                subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o500)
            try:
                yield folder / "swm", "Permission denied"
            finally:
                folder.chmod(0o700)

    @pytest.fixture
    def jp_server_config(self, swm_data_dir: tuple[Path, str], swm_sites: dict[str, Any]) -> dict[str, Any]:
        """The test server, on the unwritable data_dir."""
        return {
            "ServerApp": {"jpserver_extensions": {"swm_jupyter": True}},
            "SwmApp": {"data_dir": str(swm_data_dir[0]), "sites": swm_sites, "poll_interval": 0.5},
        }

    async def test_unwritable_data_dir_is_named_with_the_reason(
        self, jp_serverapp: Any, jp_fetch: Any, swm_data_dir: tuple[Path, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        path, reason = swm_data_dir
        expected = f"cannot write data_dir {path}: {reason}"
        with caplog.at_level(logging.INFO):
            await jp_serverapp.extension_manager.start_all_extensions()
        app = jp_serverapp.web_app.settings["swm_app"]
        assert app.start_error == expected
        response = await jp_fetch("swm", "api", "v1", "jobs", raise_error=False)
        assert response.code == 503 and body(response)["message"] == expected
        logged = f"swm: the workload manager did not start: {expected}"
        said = [r for r in caplog.records if r.getMessage().startswith(logged)]
        assert len(said) == 1 and said[0].levelno == logging.ERROR, caplog.text
        assert "Traceback" not in caplog.text
        assert (await jp_fetch("api", "status")).code == 200, "the rest of the server works"


class OwnAccountGate(LocalGate):
    """A local gate that declares it runs jobs under their owners' accounts (the hook per-user sites set)."""

    runs_as_owner = True


class TestCertificateUsersAndSharedAccounts:
    """Certificate users (client_ca + SkyPortIdentityProvider) on sites that share the server's account."""

    @pytest.fixture
    def swm_data_dir(self, tmp_path: Path) -> Path:  # type: ignore[override]
        """A writable data_dir."""
        return tmp_path / "swm-data"

    @pytest.fixture
    def allow(self) -> bool | None:
        """The value of SwmApp.allow_shared_account (None: not set)."""
        return None

    @pytest.fixture
    def jp_server_config(  # type: ignore[override]
        self, swm_data_dir: Path, swm_sites: dict[str, Any], tmp_path: Path, allow: bool | None
    ) -> dict[str, Any]:
        """A server whose identity provider accepts client certificates signed by a CA."""
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # never read: no TLS listener here
        swm = {"data_dir": str(swm_data_dir), "sites": swm_sites, "poll_interval": 0.5}
        if allow is not None:
            swm["allow_shared_account"] = allow
        return {
            "ServerApp": {
                "jpserver_extensions": {"swm_jupyter": True},
                "identity_provider_class": "swm_jupyter.auth.SkyPortIdentityProvider",
                "client_ca": str(ca),
            },
            "SwmApp": swm,
        }

    async def test_refused_unless_allowed(
        self, jp_serverapp: Any, jp_fetch: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO):
            await jp_serverapp.extension_manager.start_all_extensions()
        error = jp_serverapp.web_app.settings["swm_app"].start_error
        assert error and "server's own account (local)" in error and "allow_shared_account = True" in error
        response = await jp_fetch("swm", "api", "v1", "jobs", raise_error=False)
        assert response.code == 503 and body(response)["message"] == error
        response = await jp_fetch("user", "job", raise_error=False)  # Sky Port's routes answer errors as text
        assert response.code == 503 and response.body.decode() == f"Error: {error}\n"
        said = [r for r in caplog.records if r.getMessage().startswith("swm: the workload manager did not start")]
        assert len(said) == 1 and said[0].levelno == logging.ERROR

    @pytest.mark.parametrize("allow", [True])
    async def test_allowed_with_a_warning(
        self, jp_serverapp: Any, jp_fetch: Any, caplog: pytest.LogCaptureFixture, allow: bool
    ) -> None:
        with caplog.at_level(logging.INFO):
            await jp_serverapp.extension_manager.start_all_extensions()
        assert jp_serverapp.web_app.settings["swm_app"].start_error is None
        assert (await jp_fetch("swm", "api", "v1", "jobs", raise_error=False)).code == 200
        warned = [r for r in caplog.records if "allowed by SwmApp.allow_shared_account = True" in r.getMessage()]
        assert len(warned) == 1 and warned[0].levelno == logging.WARNING

    @pytest.mark.parametrize(
        "swm_sites", [{"mine": {"gate": "tests.test_startup.OwnAccountGate", "cpus": 2}}], ids=["own-account"]
    )
    async def test_sites_that_run_jobs_as_their_owners_need_no_permission(
        self, jp_serverapp: Any, caplog: pytest.LogCaptureFixture, swm_sites: dict[str, Any]
    ) -> None:
        with caplog.at_level(logging.INFO):
            await jp_serverapp.extension_manager.start_all_extensions()
        assert jp_serverapp.web_app.settings["swm_app"].start_error is None
        assert "allow_shared_account" not in caplog.text


async def test_without_client_ca_nothing_is_checked(jp_serverapp: Any) -> None:
    """The default server (token and cookie only): nobody but the server's owner submits; it starts."""
    await jp_serverapp.extension_manager.start_all_extensions()
    assert jp_serverapp.web_app.settings["swm_app"].start_error is None
