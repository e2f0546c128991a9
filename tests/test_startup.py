"""Start-up messages: a data_dir that cannot be written is named, with the reason, in the log and the API's 503."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import body


@pytest.fixture(params=["file-in-the-way", "unwritable"])
def swm_data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
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
def jp_server_config(swm_data_dir: tuple[Path, str], swm_sites: dict[str, Any]) -> dict[str, Any]:
    """The test server, on the unwritable data_dir."""
    return {
        "ServerApp": {"jpserver_extensions": {"swm_jupyter": True}},
        "SwmApp": {"data_dir": str(swm_data_dir[0]), "sites": swm_sites, "poll_interval": 0.5},
    }


async def test_unwritable_data_dir_is_named_with_the_reason(
    jp_serverapp: Any, jp_fetch: Any, swm_data_dir: tuple[Path, str], caplog: pytest.LogCaptureFixture
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
