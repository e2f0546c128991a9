"""The job's fields defined once (core/jobfields.py): validation, the OpenAPI document, CLI and magics options."""

from __future__ import annotations

import json
from typing import Any

import pytest

from swm_jupyter import cli, magics
from swm_jupyter.client import build_spec
from swm_jupyter.core import jobfields, model
from swm_jupyter.core.cost import estimate_cost
from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.model import JobSpec, spec_from_json
from swm_jupyter.handlers import openapi_doc
from swm_jupyter.widgets.submit import cost_estimate
from tests.conftest import body

#: The same job written as the words of ``swm submit`` and of ``%%swm submit``.
WORDS = [
    "--name", "train", "--site", "local", "--cpus", "4", "--mem", "2G", "--gpus", "1", "--nodes", "2",
    "--walltime", "1-00:00:00", "--array", "0-9%2", "--depends", "afterok:abc", "--priority", "5",
    "--hold", "--env", "A=1", "--env", "B=x=y", "--account", "acc", "--flavor", "m", "--workdir", "w",
    "--cloud-image", "img", "--container-image", "c",
]  # fmt: skip


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    committed = json.loads(openapi_doc.committed_text())
    assert committed["components"]["schemas"]["JobSpec"] == jobfields.job_spec_schema()
    assert openapi_doc.committed_text() == openapi_doc.render(openapi_doc.openapi_document())
    assert openapi_doc.main(["--check"]) == 0


async def test_the_served_openapi_document_is_the_generated_one(api: Any) -> None:
    served = body(await api("openapi.json"))
    served.pop("servers")
    expected = dict(openapi_doc.openapi_document())
    expected.pop("servers")
    assert served == expected
    assert served["components"]["schemas"]["JobSpec"]["properties"]["resources"]["properties"]["walltime"]


def test_every_field_is_in_the_schema_and_every_option_in_the_cli_and_the_magics() -> None:
    schema = jobfields.job_spec_schema()
    assert set(jobfields.FIELD_NAMES) <= set(schema["properties"]) and set(JobSpec.FIELDS) == set(jobfields.FIELD_NAMES)
    submit = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "submit")[1]
    cli_flags = {flag for action in submit._actions for flag in action.option_strings}
    magic_flags = {flag for action in magics._parsers()["submit"]._actions for flag in action.option_strings}
    for field in (*jobfields.FIELDS, *jobfields.RESOURCES):
        if field.option is not None:
            assert set(field.option.flags) <= cli_flags, field.name
            assert set(field.option.flags) <= magic_flags, field.name


def test_cli_magics_and_client_make_the_same_request_from_the_same_options() -> None:
    args = cli.build_parser().parse_args(["submit", *WORDS])
    from_cli = cli._spec_from_options(args)
    from_magic = magics.SwmMagics(None, client=object())._fields(magics._parsers()["submit"].parse_args(WORDS))
    from_client = build_spec(
        name="train", site="local", cpus=4, mem="2G", gpus=1, nodes=2, walltime="1-00:00:00", array="0-9%2",
        depends="afterok:abc", priority=5, hold=True, env={"A": "1", "B": "x=y"}, account="acc", flavor="m",
        workdir="w", cloud_image="img", container_image="c",
    )  # fmt: skip
    assert from_cli == from_magic == from_client
    spec = JobSpec.from_dict({**from_cli, "command": ["true"]})
    assert spec.resources.walltime == 86400 and spec.resources.memory_mb == 2048 and spec.env == {"A": "1", "B": "x=y"}
    assert spec.account == "acc" and spec.hold and spec.depends_on[0].job_id == "abc"


def test_schema_errors_name_the_field_and_what_to_fix() -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_dict(
            {
                "script": "",
                "resources": {"cpus": 0, "disks": 1, "walltime": [1]},
                "env": {"A": 1},
                "depends_on": 7,
                "colour": "red",
                "slurm": "gpu",
            }
        )
    errors = {e["field"]: e["message"] for e in caught.value.errors}
    assert errors["script"] == "must be the non-empty text of a script"
    assert errors["resources.cpus"] == "must be a whole number from 1 to 1000000"
    assert errors["resources.disks"].startswith("unknown resource; known: nodes, cpus, memory")
    assert "D-HH:MM:SS" in errors["resources.walltime"]
    assert errors["env.A"] == "value must be a string"
    assert "afterok:ID" in errors["depends_on"]
    assert errors["colour"].startswith("unknown field; known fields are name, site, script")
    assert errors["slurm"] == 'site extras must be an object, e.g. {"partition": "gpu"}'
    assert len(caught.value.errors) == len(errors), "one error per field"


def test_stored_specs_are_not_validated_again_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = JobSpec.from_dict({"command": ["true"], "resources": {"cpus": 2, "walltime": "1h"}, "array": "0-3"})
    stored = json.loads(json.dumps(spec.to_dict()))

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a stored spec was validated again")

    monkeypatch.setattr(model, "validation_errors", refuse)
    assert spec_from_json(stored) == spec
    # a name today's rules refuse, stored by an earlier version, still loads as it was
    assert spec_from_json({**stored, "name": "old/name"}).name == "old/name"


@pytest.mark.parametrize(
    ("walltime", "cost"),
    [("1-00:00:00", 24.0), ("2:00:00", 2.0), ("90m", 1.5), ("90", 1.5), ("1d", 24.0), ("", None), ("soon", None)],
)
def test_the_submit_form_prices_walltimes_as_the_server_reads_them(walltime: str, cost: float | None) -> None:
    assert cost_estimate(1.0, 1, walltime) == cost
    if cost is not None:
        seconds = JobSpec.from_dict({"command": ["true"], "resources": {"walltime": walltime}}).resources.walltime
        assert estimate_cost(1.0, 1, seconds) == cost


def test_null_means_not_given_as_before() -> None:
    spec = JobSpec.from_dict({"command": ["true"], "site": None, "name": None, "resources": {"cpus": None}})
    assert spec.site is None and spec.name == "true" and spec.resources.cpus == 1
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_dict({"command": ["true"], "bogus": None, "slurm": None})
    assert {e["field"] for e in caught.value.errors} == {"bogus", "slurm"}
