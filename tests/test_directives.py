"""The #SWM directive parser: every directive, every kind of error, and request values winning."""

from __future__ import annotations

import pytest

from swm_jupyter.core.directives import DIRECTIVES, merge_request, parse_directives
from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.model import JobSpec

FULL = """#!/bin/bash
# a comment
#SWM name my-job
#SWM site local
#SWM account proj1
#SWM flavor Standard_D2
#SWM cloud-image ubuntu-22.04
#SWM container-image python:3.12
#SWM workdir /scratch/me
#SWM input-files data.csv, params.json
#SWM output-files result.txt
#SWM relocatable
#SWM ports 8888,6006
#SWM gpus 1
#SWM cpus=4
#SWM mem 8G
#SWM nodes 2
#SWM walltime 01:30:00
#SWM depends afterok:abc:def,afterany:ghi
#SWM array 0-99%10
#SWM priority -5

echo hello
"""


def test_every_directive_is_read() -> None:
    fields = parse_directives(FULL)
    assert fields == {
        "name": "my-job",
        "site": "local",
        "account": "proj1",
        "flavor": "Standard_D2",
        "cloud_image": "ubuntu-22.04",
        "container_image": "python:3.12",
        "workdir": "/scratch/me",
        "input_files": ["data.csv", "params.json"],
        "output_files": ["result.txt"],
        "relocatable": True,
        "ports": [8888, 6006],
        "resources": {"gpus": 1, "cpus": 4, "memory": 8192, "nodes": 2, "walltime": 5400},
        "depends_on": "afterok:abc:def,afterany:ghi",
        "array": "0-99%10",
        "priority": -5,
    }
    used = {line.split()[1].split("=")[0] for line in FULL.splitlines() if line.startswith("#SWM")}
    assert used == set(DIRECTIVES), "the FULL script must exercise every directive"
    spec = JobSpec.from_dict({**fields, "script": FULL})
    assert spec.resources.walltime == 5400
    assert [d.kind for d in spec.depends_on] == ["afterok", "afterok", "afterany"]
    assert spec.array is not None and spec.array.throttle == 10 and len(spec.array.indices) == 100


@pytest.mark.parametrize(
    ("script", "line", "needle"),
    [
        ("#SWM frobnicate 3\n", "line 1", "unknown directive 'frobnicate'"),
        ("#!/bin/sh\n#SWM cpus many\n", "line 2", "cpus"),
        ("#SWM cpus 0\n", "line 1", "at least 1"),
        ("#SWM gpus -1\n", "line 1", "gpus"),
        ("#SWM mem lots\n", "line 1", "memory"),
        ("#SWM walltime forever\n", "line 1", "walltime"),
        ("#SWM walltime 1:99:00\n", "line 1", "walltime"),
        ("#SWM array 9-1\n", "line 1", "upwards"),
        ("#SWM array 0-9%0\n", "line 1", "throttle"),
        ("#SWM depends before:abc\n", "line 1", "afterok"),
        ("#SWM priority high\n", "line 1", "whole number"),
        ("#SWM relocatable maybe\n", "line 1", "true or false"),
        ("#SWM ports 70000\n", "line 1", "65535"),
        ("#SWM nodes\n", "line 1", "needs a value"),
        ("#SWM\n", "line 1", "empty"),
        ("#SWMcpus 2\n", "line 1", "malformed"),
        ("#swm cpus 2\n", "line 1", "malformed"),
        ("#SWM cpus 1\n#SWM cpus 2\n", "line 2", "already set on line 1"),
        ("#!/bin/sh\necho hi\n#SWM cpus 2\n", "line 3", "before the first command"),
        ("#SWM input-files ,\n", "line 1", "at least one file"),
        ("#SWM output-files out.txt ../escape.txt\n", "line 1", "'../escape.txt' must be a relative path"),
        ("#SWM output-files /etc/passwd\n", "line 1", "'/etc/passwd' must be a relative path"),
        ("#SWM input-files a/../../b\n", "line 1", "must be a relative path"),
        ("#SWM walltime 1.5s\n", "line 1", "whole number of seconds"),
        ("#SWM walltime 9999999999d\n", "line 1", "at most 31536000 seconds (365-00:00:00)"),
        ("#SWM walltime " + "9" * 400 + "s\n", "line 1", "at most 31536000 seconds"),
        ("#SWM mem " + "9" * 400 + "G\n", "line 1", "at most 1073741824 MB"),
    ],
)
def test_bad_directive_names_its_line(script: str, line: str, needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_directives(script)
    assert caught.value.errors[0]["field"] == line
    assert needle in caught.value.errors[0]["message"]


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_directives("#SWM cpus x\n#SWM nope 1\n#SWM mem 1G\n")
    assert [e["field"] for e in caught.value.errors] == ["line 1", "line 2"]


def test_request_values_win_over_directives() -> None:
    fields = parse_directives("#SWM name from-script\n#SWM cpus 2\n#SWM mem 1G\n")
    merged = merge_request(fields, {"name": "from-request", "resources": {"cpus": 8}, "site": None})
    assert merged["name"] == "from-request"
    assert merged["resources"] == {"cpus": 8, "memory": 1024}


def test_lines_that_only_look_alike_are_not_directives() -> None:
    assert parse_directives("#!/bin/bash\n#SBATCH -n 2\n# SWM cpus 2\necho '#SWM cpus 2'\n") == {}
