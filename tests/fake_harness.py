"""`python -m harness.run` with the fake engine of conftest (no model loads): for tests.

    PYTHONPATH=. python tests/fake_harness.py experiment=smoke logger.mode=offline ...

FAKE_DELAY_S=<s> makes every engine call after the first sleep that long, in a SLURM job's
first attempt only (SLURM_RESTART_COUNT unset or 0): a study that is stopped mid-way once.
"""

import os
import runpy
import time

import harness.engines
import harness.models
from harness.engines.vllm import VllmEngine
from tests.conftest import FakeEngine


class Engine(FakeEngine):
    kind = VllmEngine.kind
    reads_weights = False  # and harness.models.prepare is a no-op below
    identity = staticmethod(VllmEngine.identity)  # store keys as the real engine's
    is_deterministic = staticmethod(VllmEngine.is_deterministic)

    def __init__(self, model, engine, seed: int = 0):
        super().__init__(model.name, [])

    def chat(self, conversations, params):
        first_attempt = os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
        if self.calls and first_attempt:
            time.sleep(float(os.environ.get("FAKE_DELAY_S", "0")))
        return super().chat(conversations, params)


harness.engines.REGISTRY[Engine.kind] = Engine  # engine.kind=vllm loads the fake
harness.models.prepare = lambda name: None

if __name__ == "__main__":
    runpy.run_module("harness.run", run_name="__main__", alter_sys=True)
