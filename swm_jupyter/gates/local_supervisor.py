"""Old home of the local supervisor, kept so that imports and ``python -m`` of this path still work.

The supervisor lives in :mod:`swm_jupyter.daemons.local_supervisor` (a standalone daemon, not a
gate). Importing this module gives that module itself; running it with ``-m`` runs its ``main``
(so a sudoers rule that names this path keeps working).
"""

from __future__ import annotations

import sys

from ..daemons import local_supervisor as _impl

if __name__ == "__main__":
    _impl.main()
else:
    sys.modules[__name__] = _impl
