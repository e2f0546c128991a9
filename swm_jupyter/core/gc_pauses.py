"""Keep CPython's full garbage collections from stalling the event loop.

A full collection walks every object the collector tracks. A Jupyter server holds a few hundred
thousand of them from its start (modules, classes, configuration) and a held 100,000-task array
adds about 300,000 more, so on a busy 2-core machine one full collection took 100 ms - 1.4 s,
during which no request was answered (the tail of ``bench_responsiveness.py``). Two measures:

- :func:`freeze_startup_heap`: once the manager has started, the objects alive then (the server's
  own, and the jobs loaded from the store) live as long as the process; ``gc.freeze()`` moves them
  out of every later collection.
- :func:`bulk_work`: while a request creates or changes a big array slice by slice, automatic
  collections wait until it is done (reference counting still frees everything that is not in a
  cycle), and the tasks it created are frozen as long-lived. An object in a cycle that was alive
  at a freeze and dies later is not reclaimed; a freeze happens once at start and once per bulk
  submission, so that stays a few objects per big array, never per job.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: How many :func:`bulk_work` blocks are open (they may overlap: two big submissions at once).
_open_blocks = 0
#: Whether automatic collection was on when the first open block began.
_was_enabled = True
#: Whether a block that made long-lived objects ended while others were still open.
_freeze_due = False
#: Whether the module freezes at all (``SwmApp.gc_freeze``).
enabled = True


def freeze_startup_heap() -> None:
    """Collect once, then move every live object out of later collections (called once the manager runs)."""
    if not enabled:
        return
    gc.collect()
    gc.freeze()


@contextmanager
def bulk_work(*, keeps_objects: bool) -> Iterator[None]:
    """Hold automatic collections while the block runs; with ``keeps_objects``, freeze what it made.

    ``keeps_objects`` is for work that creates long-lived objects (a submission's tasks stay in
    memory until they end); work that only changes or drops objects passes False.
    """
    global _open_blocks, _was_enabled, _freeze_due
    if not enabled:
        yield
        return
    if _open_blocks == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _open_blocks += 1
    try:
        yield
    finally:
        _open_blocks -= 1
        _freeze_due = _freeze_due or keeps_objects
        if _open_blocks == 0:
            if _freeze_due:
                gc.freeze()
                _freeze_due = False
            if _was_enabled:
                gc.enable()
