"""write_back (files of a stopped server brought back into its user's home, written by root as the user's):
nothing the user, or another user, controls redirects it. Runs as root, as CI does, with the real accounts
alice and bob the hub tests use."""

from __future__ import annotations

import os
import pwd
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swm_jupyter.core.errors import PathNotAllowed
from swm_jupyter.hub.stage_back import HomeAccount, write_back


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[HomeAccount, Path]]:
    """A home folder of bob's (0700) in a fresh temp dir, and bob's account with that home."""
    assert os.geteuid() == 0, "write_back acts for other users: run as root, as CI does"
    entry = pwd.getpwnam("bob")
    folder = tmp_path / "bob-home"
    folder.mkdir(mode=0o700)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    yield HomeAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, str(folder)), folder


def test_written_as_the_users_file_and_never_outside_the_home(home: tuple[HomeAccount, Path], tmp_path: Path) -> None:
    account, folder = home
    assert write_back(account, "a/b/out.txt", b"data", since=0, tag="job1") == "a/b/out.txt"
    written = folder / "a" / "b" / "out.txt"
    assert written.read_bytes() == b"data" and written.stat().st_uid == account.uid
    assert (folder / "a").stat().st_uid == account.uid and stat.S_IMODE((folder / "a").stat().st_mode) == 0o700
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "link").symlink_to(outside)
    for path in ("../escape.txt", "/etc/escape.txt", "link/escape.txt", "a/../../escape.txt"):
        with pytest.raises(PathNotAllowed):
            write_back(account, path, b"x", since=0, tag="job1")
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.txt").exists()
    # a link at the file's own name is replaced, never written through
    target = outside / "target.txt"
    target.write_bytes(b"root's")
    (folder / "a" / "b" / "swapped.txt").symlink_to(target)
    write_back(account, "a/b/swapped.txt", b"new", since=0, tag="job1")
    assert target.read_bytes() == b"root's"
    assert not (folder / "a" / "b" / "swapped.txt").is_symlink()


def test_another_users_file_in_a_sticky_folder_is_not_replaced(home: tuple[HomeAccount, Path]) -> None:
    account, folder = home
    alice = pwd.getpwnam("alice")
    shared = folder / "shared"
    shared.mkdir()
    os.chown(shared, alice.pw_uid, alice.pw_gid)
    shared.chmod(0o1777)  # like /tmp: bob may write in it, but not replace alice's files
    theirs = shared / "results.csv"
    theirs.write_bytes(b"alice's results")
    os.chown(theirs, alice.pw_uid, alice.pw_gid)
    with pytest.raises(PathNotAllowed, match="sticky"):
        write_back(account, "shared/results.csv", b"bob's copy", since=0, tag="job1")
    assert theirs.read_bytes() == b"alice's results" and theirs.stat().st_uid == alice.pw_uid
    # his own file there, and a new one, are fine
    assert write_back(account, "shared/mine.csv", b"bob's", since=0, tag="job1") == "shared/mine.csv"
    later = time.time() + 60  # the server started after bob last changed it at home
    assert write_back(account, "shared/mine.csv", b"bob's again", since=later, tag="job1") == "shared/mine.csv"
    assert (shared / "mine.csv").read_bytes() == b"bob's again"
