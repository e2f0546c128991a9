"""Job specs: validation of every field, units, arrays and dependencies."""

from __future__ import annotations

import re

import pytest

from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.model import ArraySpec, JobSpec, spec_from_json
from swm_jupyter.core.units import format_walltime, parse_memory_mb, parse_walltime_seconds


def test_round_trip_keeps_every_field() -> None:
    spec = JobSpec.from_dict(
        {
            "name": "t",
            "site": "local",
            "command": ["python", "x.py"],
            "env": {"A": "1"},
            "resources": {"nodes": 1, "cpus": 2, "memory": "2G", "gpus": 0, "walltime": "00:10:00"},
            "input_files": ["a"],
            "output_files": ["b"],
            "depends_on": {"afterany": ["j1"]},
            "array": "1,3,5-9:2%2",
            "priority": 3,
            "hold": True,
            "account": "acc",
            "flavor": "f",
            "cloud_image": "ci",
            "container_image": "img",
            "ports": "80, 443",
            "relocatable": True,
            "slurm": {"partition": "gpu"},
        }
    )
    assert spec_from_json(spec.to_dict()) == spec
    assert spec.resources.memory_mb == 2048 and spec.resources.walltime == 600
    assert spec.array is not None and spec.array.indices == (1, 3, 5, 7, 9)
    assert spec.extra("slurm") == {"partition": "gpu"}


def test_every_bad_field_is_listed_with_its_path() -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_dict(
            {
                "command": "echo hi",
                "resources": {"cpus": -1, "memory": "x", "walltime": "soon", "disks": 2},
                "env": {"1BAD": "x"},
                "priority": "high",
                "hold": "yes",
                "ports": [0],
                "array": "a-b",
                "depends_on": "before:x",
                "colour": "red",
                "parameters": {"a": 1},
            }
        )
    fields = {e["field"] for e in caught.value.errors}
    assert fields >= {
        "command",
        "resources.cpus",
        "resources.memory",
        "resources.walltime",
        "resources.disks",
        "env.1BAD",
        "priority",
        "hold",
        "ports",
        "array",
        "depends_on",
        "colour",
        "parameters",
    }


def test_one_thing_to_run() -> None:
    with pytest.raises(ValidationError, match="give one of script, command or notebook"):
        JobSpec.from_dict({"name": "x"})
    with pytest.raises(ValidationError, match="only one of"):
        JobSpec.from_dict({"script": "echo", "command": ["true"]})
    with pytest.raises(ValidationError, match="JSON object"):
        JobSpec.from_dict(["true"])


@pytest.mark.parametrize(
    ("text", "mb"),
    [(512, 512), ("512", 512), ("512M", 512), ("4G", 4096), ("1.5GB", 1536), ("1T", 1048576), ("2048K", 2)],
)
def test_memory_units(text: object, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90),
        ("90", 5400),
        ("10:00", 600),
        ("01:00:00", 3600),
        ("1-00:00:01", 86401),
        ("30s", 30),
        ("2h", 7200),
        ("1d", 86400),
    ],
)
def test_walltime_units(text: object, seconds: int) -> None:
    assert parse_walltime_seconds(text) == seconds
    assert parse_walltime_seconds(format_walltime(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "x", "-1", "0", "1:2:3:4", True])
def test_bad_walltimes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_walltime_seconds(bad)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (1.5, "whole number of seconds"),
        ("1.5s", "whole number of seconds"),
        (10**30, "at most 31536000 seconds (365-00:00:00)"),
        (float("inf"), "at most 31536000 seconds"),
        (float("nan"), "positive"),
        ("9" * 400 + "d", "at most 31536000 seconds"),
        ("366-00:00:00", "at most 31536000 seconds"),
    ],
)
def test_walltimes_that_are_not_whole_or_absurd_are_refused(bad: object, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        parse_walltime_seconds(bad)
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_dict({"command": ["true"], "resources": {"walltime": bad}})
    assert caught.value.errors[0]["field"] == "resources.walltime"


def test_the_longest_and_whole_walltimes_are_accepted() -> None:
    assert parse_walltime_seconds(365 * 86400) == 365 * 86400, "the longest walltime: 365 days"
    assert parse_walltime_seconds(60.0) == 60 and parse_walltime_seconds("1.5m") == 90


@pytest.mark.parametrize(
    ("spec", "field", "needle"),
    [
        ({"command": ["echo", "a\x00b"]}, "command.1", "NUL byte"),
        ({"command": ["true"], "workdir": "/tmp/x\x00y"}, "workdir", "NUL byte"),
        ({"command": ["true"], "env": {"MODE": "fa\x00st"}}, "env.MODE", "NUL byte"),
        ({"command": ["true"], "env": {"MO\x00DE": "fast"}}, "env.MO\x00DE", "NUL byte"),
        ({"script": "echo hi\x00\n"}, "script", "NUL byte"),
        ({"command": ["true"], "slurm": {"partition": "gpu\x00"}}, "slurm.partition", "NUL byte"),
        ({"command": ["true"], "output_files": ["../escape.txt"]}, "output_files", "'../escape.txt' must be"),
        ({"command": ["true"], "output_files": ["out/../../x"]}, "output_files", "inside the job folder"),
        ({"command": ["true"], "output_files": ["/etc/passwd"]}, "output_files", "'/etc/passwd' must be a relative"),
        ({"command": ["true"], "output_files": "ok.txt, ../x"}, "output_files", "'../x' must be a relative"),
        ({"command": ["true"], "input_files": ["/etc/passwd"]}, "input_files", "must be a relative path"),
        ({"command": ["true"], "resources": {"cpus": 10**30}}, "resources.cpus", "from 1 to 1000000"),
        ({"command": ["true"], "resources": {"memory": 10**30}}, "resources.memory", "at most 1073741824 MB"),
    ],
)
def test_what_would_fail_at_run_or_end_is_refused_at_submission(spec: dict, field: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_dict(spec)
    assert field in {e["field"] for e in caught.value.errors}
    assert any(needle in e["message"] for e in caught.value.errors if e["field"] == field), caught.value.errors


def test_relative_paths_inside_the_folder_are_accepted() -> None:
    spec = JobSpec.from_dict({"command": ["true"], "output_files": ["out/result.txt", "./a", "b..c"]})
    assert spec.output_files == ("out/result.txt", "./a", "b..c")


def test_specs_stored_by_an_older_version_still_load() -> None:
    """A spec accepted before these checks (``..`` in output_files, a long walltime) is still read back."""
    stored = {"command": ["true"], "output_files": ["../x"], "resources": {"walltime": 10**9, "cpus": 2}}
    spec = spec_from_json(stored)
    assert spec.output_files == ("../x",) and spec.resources.walltime == 10**9 and spec.resources.cpus == 2


def test_array_syntax() -> None:
    assert ArraySpec.parse("0-99%10").throttle == 10
    assert len(ArraySpec.parse("0-9999").indices) == 10_000
    for bad in ["", "1-", "5-1", "0-9%x", "0-9:0"]:
        with pytest.raises(ValueError):
            ArraySpec.parse(bad)
