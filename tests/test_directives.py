"""The #SWM directive parser: every directive, every kind of error, and request values winning."""

from __future__ import annotations

import pytest

from swm_jupyter.core.directives import ALIASES, DIRECTIVES, merge_request, parse_directives, read_directives
from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.model import JobSpec, spec_from_json

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
#SWM ports 8888,6006/tcp,7000/tcp/in,8081/tcp/out
#SWM comment nightly run, see ticket 42
#SWM submission-address 10.1.2.3
#SWM stdin in.txt
#SWM stdout logs/out.txt
#SWM stderr logs/err.txt
#SWM storage 20G
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
        "ports": [8888, 6006, 7000],
        "outbound_ports": [8081],
        "comment": "nightly run, see ticket 42",
        "submission_address": "10.1.2.3",
        "stdin": "in.txt",
        "stdout": "logs/out.txt",
        "stderr": "logs/err.txt",
        "resources": {"storage": 20480, "gpus": 1, "cpus": 4, "memory": 8192, "nodes": 2, "walltime": 5400},
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
    assert spec.ports == (8888, 6006, 7000) and spec.outbound_ports == (8081,)
    assert spec.resources.storage_mb == 20480 and spec.comment == "nightly run, see ticket 42"
    assert spec_from_json(spec.to_dict()) == spec, "the new fields survive the stored form"


SKY_PORT_FORMS = """#!/bin/bash
#SWM name wild
#SWM account_id proj7
#SWM image ubuntu-22.04
#SWM input data/a.csv
#SWM input data/b.csv
#SWM input-files c.csv
#SWM output out/result.txt
#SWM output-files out/log.txt
#SWM nodes 3
#SWM ports 1234/tcp
#SWM relocatable
echo hi
"""


def test_sky_port_forms_in_the_wild_mean_what_sky_port_means() -> None:
    fields, warnings = read_directives(SKY_PORT_FORMS)
    assert warnings == []
    assert fields == {
        "name": "wild",
        "account": "proj7",
        "cloud_image": "ubuntu-22.04",
        "input_files": ["data/a.csv", "data/b.csv", "c.csv"],
        "output_files": ["out/result.txt", "out/log.txt"],
        "resources": {"nodes": 3},
        "ports": [1234],
        "relocatable": True,
    }
    assert set(ALIASES) == {"account-id", "input", "output", "image"}
    assert read_directives("#SWM input-files\n#SWM output \n") == ({}, []), "no files, as Sky Port reads it"
    with pytest.raises(ValidationError, match="already set on line 3"):
        parse_directives("#!/bin/sh\n#SWM comment x\n#SWM account_id a\n#SWM account b\n")


def test_unknown_directives_are_warnings_unless_strict() -> None:
    script = "#!/bin/sh\n#SWM name w\n#SWM frobnicate 3\n#SWM checkpoint dmtcp\necho x\n"
    fields, warnings = read_directives(script)
    assert fields == {"name": "w"}
    assert len(warnings) == 2
    assert warnings[0].startswith("line 3: unknown directive 'frobnicate'") and "ignored" in warnings[0]
    assert warnings[1].startswith("line 4: unknown directive 'checkpoint'")
    with pytest.raises(ValidationError) as caught:
        read_directives(script, strict=True)
    assert [e["field"] for e in caught.value.errors] == ["line 3", "line 4"]
    with pytest.raises(ValidationError, match="cpus"):  # a known directive with a bad value stays an error
        read_directives("#SWM frobnicate 1\n#SWM cpus lots\n")


@pytest.mark.parametrize(
    ("value", "inbound", "outbound"),
    [
        ("8888", [8888], []),
        ("8888/tcp", [8888], []),
        ("8888/tcp/in", [8888], []),
        ("8081/tcp/out", [], [8081]),
        ("8888/tcp/in,8081/tcp/out", [8888], [8081]),
        ("8888/TCP/IN, 9000", [8888, 9000], []),
    ],
)
def test_ports_forms(value: str, inbound: list[int], outbound: list[int]) -> None:
    fields = parse_directives(f"#SWM ports {value}\n")
    assert fields.get("ports", []) == inbound and fields.get("outbound_ports", []) == outbound


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
        ("#SWM ports 53/udp\n", "line 1", "only tcp"),
        ("#SWM ports 80/tcp/sideways\n", "line 1", "in or out"),
        ("#SWM ports 80/tcp/in/x\n", "line 1", "8888/tcp/in"),
        ("#SWM stdout /etc/passwd\n", "line 1", "must be a relative path"),
        ("#SWM stdin ../secret\n", "line 1", "must be a relative path"),
        ("#SWM storage lots\n", "line 1", "storage"),
        ("#SWM comment\n", "line 1", "needs a value"),
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
