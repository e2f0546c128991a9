"""Old home of the notebook runner, kept so that imports and ``python -m`` of this path still work.

The runner lives in :mod:`swm_jupyter.runners.notebook`. Importing this module gives that module
itself; ``python -m swm_jupyter.notebook_runner job.json`` runs it.
"""

from __future__ import annotations

import sys

from .runners import notebook as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
else:
    sys.modules[__name__] = _impl
