"""The flag the manager's loops sleep on: woken at once when set, else after the timeout."""

from __future__ import annotations

import asyncio
import time

from swm_jupyter.core.wakeup import Wakeup

from .core_helpers import run


def test_sleep_ends_when_set_or_after_its_timeout() -> None:
    async def body() -> None:
        wake = Wakeup()
        start = time.monotonic()
        await wake.sleep(0.2)
        assert 0.18 <= time.monotonic() - start < 1.0, "not set: sleeps the whole timeout"

        asyncio.get_running_loop().call_later(0.05, wake.set)
        start = time.monotonic()
        await wake.sleep(10)
        assert time.monotonic() - start < 1.0, "set while sleeping: wakes at once"
        assert wake.is_set()

        start = time.monotonic()
        await wake.sleep(10)
        assert time.monotonic() - start < 0.1, "still set: returns at once"
        wake.clear()
        assert not wake.is_set()
        start = time.monotonic()
        await wake.sleep(0.1)
        assert time.monotonic() - start >= 0.09, "cleared: sleeps again"

    run(body())
