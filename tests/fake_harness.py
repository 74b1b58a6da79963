"""`python -m harness.run` with the fake engine of conftest (no model loads): for tests.

PYTHONPATH=. python tests/fake_harness.py experiment=smoke logger.mode=offline ...
"""

import runpy

import harness.engines.vllm as vllm_engine
import harness.models
from tests.conftest import FakeEngine


class Engine(FakeEngine):
    def __init__(self, model, engine, seed: int = 0):
        super().__init__(model.name, [])


vllm_engine.VllmEngine = Engine
harness.models.prepare = lambda name: None

if __name__ == "__main__":
    runpy.run_module("harness.run", run_name="__main__", alter_sys=True)
