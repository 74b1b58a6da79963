# Environment of a harness job on a cluster: sourced by slurm/study.sbatch and by every sweep
# point (conf/launcher/slurm.yaml, `hydra.launcher.setup`); source it in an interactive
# session too. Every variable keeps a value you exported before; the defaults put the big
# files (models, W&B's staging, compiler caches) under HARNESS_SCRATCH, not the home directory.
#
#   HARNESS_SCRATCH    root of the defaults below: $SCRATCH if the cluster sets it, else
#                      <submit dir>/.cache (a shared project or scratch file system)
#   HF_HOME            Hugging Face hub cache (models, datasets, tokens)
#   HF_HUB_OFFLINE     1 = never reach the hub from a job (compute nodes often have no network);
#                      fill HF_HOME on a login node first (`huggingface-cli download <id>`).
#                      Default 0; the GGUF models of conf/model/ never need the hub.
#   HF_DATASETS_OFFLINE  the same for `datasets` (benchmarks not in paths.data)
#   HARNESS_CACHE_DIR  prepared models (harness.models) and paths.cache
#   HARNESS_STORE_DIR  the proposal store (paths.store): must be on a file system all nodes see
#   WANDB_DIR          unset: runs live in their run directory (<run dir>/wandb/)
#   WANDB_DATA_DIR     W&B's artifact staging (default ~/.local/share/wandb otherwise)
#   WANDB_CACHE_DIR    W&B's artifact cache (default ~/.cache/wandb otherwise)
#   WANDB_CONFIG_DIR   W&B's settings and credentials (default ~/.config/wandb): left alone
#   VLLM_CACHE_ROOT, TRITON_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR: compiled kernels
#   HARNESS_SETUP      shell lines run last, e.g. the setup hook of your cluster:
#                      HARNESS_SETUP='module load cuda/12.4; source ~/envs/harness/bin/activate'
#                      (or put them in slurm/setup.local.sh, which is sourced when present)
# shellcheck shell=bash
: "${HARNESS_SCRATCH:=${SCRATCH:-${SLURM_SUBMIT_DIR:-$PWD}/.cache}}"
: "${HF_HOME:=$HARNESS_SCRATCH/huggingface}"
: "${HF_HUB_OFFLINE:=0}"
: "${HF_DATASETS_OFFLINE:=$HF_HUB_OFFLINE}"
: "${HARNESS_CACHE_DIR:=$HARNESS_SCRATCH/harness}"
: "${WANDB_DATA_DIR:=$HARNESS_SCRATCH/wandb-data}"
: "${WANDB_CACHE_DIR:=$HARNESS_SCRATCH/wandb-cache}"
: "${VLLM_CACHE_ROOT:=$HARNESS_SCRATCH/vllm}"
: "${TRITON_CACHE_DIR:=$HARNESS_SCRATCH/triton}"
: "${TORCHINDUCTOR_CACHE_DIR:=$HARNESS_SCRATCH/inductor}"
export HARNESS_SCRATCH HF_HOME HF_HUB_OFFLINE HF_DATASETS_OFFLINE HARNESS_CACHE_DIR \
  WANDB_DATA_DIR WANDB_CACHE_DIR VLLM_CACHE_ROOT TRITON_CACHE_DIR TORCHINDUCTOR_CACHE_DIR
mkdir -p "$HARNESS_SCRATCH"

# the setup hook: module loads, environment activation
_harness_slurm_dir="$(dirname "${BASH_SOURCE[0]}")"
if [ -f "$_harness_slurm_dir/setup.local.sh" ]; then
  # shellcheck source=/dev/null
  . "$_harness_slurm_dir/setup.local.sh"
fi
if [ -n "${HARNESS_SETUP:-}" ]; then
  eval "$HARNESS_SETUP"
fi
unset _harness_slurm_dir
