"""Moving the SQLite write-ahead log into the database file in a background thread.

In WAL mode SQLite copies the log back into the database ("checkpoints") from inside whichever
commit pushes the log past ``wal_autocheckpoint`` pages, so every thousandth submission pays for a
thousand. The store instead raises that threshold to a backstop and lets this thread checkpoint
on its own connection (``PRAGMA wal_checkpoint(PASSIVE)``, which never blocks writers or readers).
The sqlite3 module releases the GIL while SQLite works, so this runs beside the event loop.
Checkpoints do not change durability: a commit is durable once it is in the log.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

#: Pages the log may reach before a commit checkpoints it itself (if this thread falls behind).
BACKSTOP_PAGES = 20000
#: Seconds between checkpoints.
INTERVAL = 0.5


class WalCheckpointer:
    """A daemon thread that checkpoints the store's log every :data:`INTERVAL` seconds."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swm-wal-checkpoint", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one checkpoint's time)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            while not self._stop.wait(INTERVAL):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # busy or short of disk: the next round, or the backstop, catches up
        finally:
            db.close()
