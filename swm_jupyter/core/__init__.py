"""The workload-manager core: jobs, states, the store and the scheduler (no Jupyter imports).

Gates (:mod:`swm_jupyter.gates`) use only the modules named in :data:`GATE_API`, and only their
public names (no leading underscore); everything else here (manager, store, scheduler, reconcile
loop, ...) is the core's own. The core reaches gate modules only through
:mod:`~swm_jupyter.core.gate_registry`, by name. ``tests/test_architecture.py`` checks both rules.
"""

#: The core modules a gate may import (their public names): the gate contract and the helpers
#: every kind of site shares.
GATE_API = frozenset(
    {
        "accounts",
        "cost",
        "directives",
        "errors",
        "gate_contract",
        "job_env",
        "job_files",
        "jsoncodec",
        "launch",
        "model",
        "owned_folders",
        "states",
        "tasks",
        "units",
        "user_paths",
    }
)
