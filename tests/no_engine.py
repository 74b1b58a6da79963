"""`python -m harness.run` in which constructing any engine ends the process: for tests of runs
that must load no model (a config error, a rerun served from the store).

    PYTHONPATH=. python tests/no_engine.py <overrides ...>

Every engine class of the REGISTRY has its `__init__` replaced: the first construction prints
`ENGINE CONSTRUCTED: <model>` to stderr and exits with ENGINE_EXIT at once (os._exit, which no
`except` or `finally` of the harness can intercept). So a test that expects no model load fails
exactly when one happens, whatever the harness logs.
"""

import os
import runpy
import sys

import harness.engines

ENGINE_EXIT = 97


def refuse(self, model, *args, **kwargs):
    print(f"ENGINE CONSTRUCTED: {getattr(model, 'name', model)}", file=sys.stderr, flush=True)
    os._exit(ENGINE_EXIT)


if __name__ == "__main__":  # never on import (a test reads ENGINE_EXIT from here)
    for cls in harness.engines.REGISTRY.values():
        cls.__init__ = refuse
    sys.argv[0] = "harness.run"
    runpy.run_module("harness.run", run_name="__main__", alter_sys=True)
