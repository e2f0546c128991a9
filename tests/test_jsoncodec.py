"""The fast JSON codec: what orjson refuses still goes through, and round trips like json."""

from __future__ import annotations

import json
import math

import pytest

from swm_jupyter.core.jsoncodec import parse, to_bytes, to_text


@pytest.mark.parametrize(
    "value",
    [
        {"id": "j-1", "state": "running", "exit_code": None, "time": 1795656477.834657, "env": {"A": "é ✓"}},
        [1, 2.5, True, None, "x"],
        {"big": 2**70},  # beyond 64 bits: orjson refuses, json writes it
        {"lone": "\ud800"},  # a lone surrogate (JSON input may hold one): orjson refuses
    ],
)
def test_values_round_trip(value: object) -> None:
    assert parse(to_text(value)) == value
    assert parse(to_bytes(value)) == value
    assert json.loads(to_text(value)) == value  # what it writes is JSON that json reads too


def test_keys_that_are_not_strings_are_written_as_json_writes_them() -> None:
    assert parse(to_text({1: "a"})) == {"1": "a"}


def test_text_json_wrote_is_read_even_where_orjson_is_stricter() -> None:
    assert math.isnan(parse(json.dumps({"x": float("nan")}))["x"])


def test_what_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse(b"{not json")
