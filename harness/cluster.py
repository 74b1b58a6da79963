"""The SLURM allocation against the run's config: GPUs granted versus tensor_parallel_size, and
a sweep's jobs against the cluster (`check_launcher`: sbatch's refusal, before anything is
submitted, as one line naming the hydra.launcher knob to change).

GPUs are checked twice: at submission of a sweep (`hydra.launcher.gres` of conf/launcher/slurm.yaml,
by harness.sweep's callback) and at the start of every job (the GPUs SLURM granted, from
SLURM_GPUS_ON_NODE / SLURM_JOB_GPUS), so a mismatch fails in seconds, not after a model load.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

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


# -- a sweep's jobs against the cluster, before anything is submitted ---------------------------
KNOB = "hydra.launcher"


def sbatch_text(params: dict, folder: str) -> str:
    """The batch script submitit would submit for one point, built by submitit itself (the same
    parameter mapping as hydra-submitit-launcher's `launch`)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    executor = submitit.AutoExecutor(cluster="slurm", folder=folder)
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    skip = {"_target_", "submitit_folder", "max_num_timeout"}
    executor.update_parameters(
        **{k if k in generic else f"slurm_{k}": v for k, v in params.items() if k not in skip}
    )
    return executor._executor._make_submission_file_text("true", "preflight")


def slurm_nodes(partition: str | None = None) -> list[dict[str, str]]:
    """`scontrol show node -o` as one dict a node (of `partition` when given)."""
    proc = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True)
    nodes = [
        dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        for line in proc.stdout.splitlines()
        if line.strip()
    ]
    if partition:
        nodes = [n for n in nodes if partition in n.get("Partitions", "").split(",")]
    return nodes


def node_gpus(node: dict[str, str]) -> int:
    return sum(gres_gpus(part) or 0 for part in node.get("Gres", "").split(",") if "gpu" in part)


def explain_refusal(error: str, params: dict, nodes: list[dict[str, str]]) -> str:
    """sbatch's refusal as one line naming the launcher knob to change."""
    lowered = error.lower()
    if "partition" in lowered:
        parts = sorted({p for n in slurm_nodes() for p in n.get("Partitions", "").split(",") if p})
        return (
            f"{KNOB}.partition={params.get('partition')!r} is not a partition of this cluster "
            f"(partitions: {', '.join(parts) or '?'}); set {KNOB}.partition"
        )
    if not nodes:
        return f"sbatch refuses the sweep's jobs: {error}; check {KNOB}.* (conf/launcher/)"
    most = lambda key: max(int(n.get(key, "0") or 0) for n in nodes)  # noqa: E731
    where = f" of partition {params['partition']}" if params.get("partition") else ""
    mem_mb, cpus = most("RealMemory"), most("CPUTot")
    asked_cpus = int(params.get("cpus_per_task") or 1) * int(params.get("tasks_per_node") or 1)
    asked_gpus = gres_gpus(params.get("gres")) or int(params.get("gpus_per_node") or 0)
    if params.get("mem_gb") and int(params["mem_gb"]) * 1024 > mem_mb:
        return (
            f"{KNOB}.mem_gb={params['mem_gb']} is more than any node{where} has ({mem_mb} MB, "
            f"{mem_mb // 1024} GB): set {KNOB}.mem_gb={max(1, mem_mb // 1024)} or less "
            f"(launcher=slurm_local fits a small one-node cluster)"
        )
    if asked_cpus > cpus:
        return (
            f"{KNOB}.cpus_per_task={params.get('cpus_per_task')} (x tasks_per_node="
            f"{params.get('tasks_per_node') or 1}) is more than any node{where} has ({cpus} CPUs): "
            f"set {KNOB}.cpus_per_task={cpus} or less"
        )
    if asked_gpus > max(node_gpus(n) for n in nodes) or "gres" in lowered:
        gpus = max(node_gpus(n) for n in nodes)
        return (
            f"{KNOB}.gres={params.get('gres')} asks {asked_gpus} GPU(s) but the nodes{where} have "
            f"at most {gpus}: lower {KNOB}.gres (and engine.kwargs.tensor_parallel_size)"
        )
    if "time" in lowered:
        return f"{KNOB}.timeout_min={params.get('timeout_min')} is refused: {error}"
    return f"sbatch refuses the sweep's jobs: {error}; check {KNOB}.* (conf/launcher/)"


def check_launcher(params: dict) -> None:
    """ConfigError (one line naming the knob) when sbatch would refuse the sweep's jobs: the
    script submitit would submit, tried with `sbatch --test-only` (nothing is queued). Nothing
    is checked where sbatch is absent."""
    if shutil.which("sbatch") is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "preflight.sh"
        script.write_text(sbatch_text(params, folder))
        proc = subprocess.run(
            ["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=60
        )
    if proc.returncode == 0:
        return
    lines = [x.split("error:", 1)[-1].split("failure:", 1)[-1].strip()
             for x in proc.stderr.splitlines() if x.strip()]  # fmt: skip
    error = "; ".join(dict.fromkeys(lines)) or f"sbatch exited {proc.returncode}"
    raise ConfigError(explain_refusal(error, params, slurm_nodes(params.get("partition"))))
