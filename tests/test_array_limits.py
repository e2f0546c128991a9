"""``max_array_size``: an array over the limit is refused (400) at once, before any task is made."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import body


async def test_an_array_over_max_array_size_is_400_at_once(api: Any) -> None:
    started = time.monotonic()
    answer = await api("jobs", params={"dry_run": "1"}, json_body={"command": ["true"], "array": "0-999999"})
    elapsed = time.monotonic() - started
    assert answer.code == 400, body(answer)
    message = body(answer)["message"]
    assert "1,000,000 tasks" in message and "100,001" in message and "max_array_size" in message, message
    assert body(answer)["errors"][0]["field"] == "array"
    assert elapsed < 2, f"refusing took {elapsed:.1f}s"
    refused = await api("jobs", json_body={"command": ["true"], "array": "0-100001", "hold": True})
    assert refused.code == 400, body(refused)
    assert body(await api("jobs"))["total"] == 0


async def test_an_array_at_max_array_size_is_counted_not_built_by_a_dry_run(api: Any) -> None:
    started = time.monotonic()
    answer = await api("jobs", params={"dry_run": "1"}, json_body={"command": ["true"], "array": "0-100000"})
    assert answer.code == 200, body(answer)
    assert body(answer)["tasks"] == 100_001
    assert time.monotonic() - started < 2


async def test_max_array_size_is_configurable(api: Any, swm_started: Any) -> None:
    swm_started.max_array_size = 10
    script = "#!/bin/sh\n#SWM array 0-10\ntrue\n"
    answer = await api("jobs", json_body={"script": script})
    assert answer.code == 400 and "limit of 10 " in body(answer)["message"], body(answer)
    ok = await api("jobs", json_body={"script": script.replace("0-10", "1-10"), "hold": True})
    assert ok.code == 201, body(ok)
