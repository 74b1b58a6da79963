"""The SLURM allocation against the run's config: GPUs granted versus tensor_parallel_size.

Checked twice: at submission of a sweep (`hydra.launcher.gres` of conf/launcher/slurm.yaml,
by harness.sweep's callback) and at the start of every job (the GPUs SLURM granted, from
SLURM_GPUS_ON_NODE / SLURM_JOB_GPUS), so a mismatch fails in seconds, not after a model load.
"""

from __future__ import annotations

import os
import re

from harness.errors import ConfigError


def gres_gpus(gres: str | None) -> int | None:
    """GPUs per node asked by a --gres string (`gpu:2`, `gpu:a100:2`, `gpu`); None: none asked."""
    if not gres:
        return None
    for part in str(gres).split(","):
        fields = part.strip().split(":")
        if fields[0] != "gpu":
            continue
        return int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return None


def granted_gpus(env: dict[str, str] | None = None) -> int | None:
    """GPUs SLURM granted this job on this node; None outside SLURM or when none were asked."""
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" not in env:
        return None
    if env.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(env["SLURM_GPUS_ON_NODE"])
    ids = env.get("SLURM_JOB_GPUS") or env.get("SLURM_STEP_GPUS")
    return len(re.findall(r"\d+", ids)) if ids else None


def check_tensor_parallel(tp: int, gpus: int | None, where: str) -> None:
    """Fail when `gpus` (granted or asked) does not match `tensor_parallel_size`."""
    if gpus is None or tp <= 1 and gpus <= 1:
        return
    if gpus != tp:
        raise ConfigError(
            f"{where} gives {gpus} GPU(s) but engine.kwargs.tensor_parallel_size={tp}: "
            f"ask for --gres=gpu:{tp} (hydra.launcher.gres=gpu:{tp}) or set "
            f"engine.kwargs.tensor_parallel_size={gpus}"
        )


def check_job(engine_kwargs: dict) -> None:
    """At job start: the GPUs SLURM granted match the engine's tensor_parallel_size."""
    tp = int(engine_kwargs.get("tensor_parallel_size", 1) or 1)
    check_tensor_parallel(tp, granted_gpus(), "this SLURM job")
