#!/usr/bin/env bash
# Submit a large study in two phases: an array job that generates the proposals of each model
# (one task per proposer model, each holding one model), then the study itself, which starts
# only when every task succeeded (--dependency=afterok) and finds every proposal in the store,
# so it only aggregates and scores.
#
# Usage:
#   slurm/two_phase.sh [--sbatch "OPTIONS"] [harness overrides ...]
#   slurm/two_phase.sh experiment=mixtures_cpu
#   slurm/two_phase.sh --sbatch "--gres=gpu:1 --partition=gpu --time=08:00:00" \
#       experiment=mixtures_cpu engine=gpu
#   slurm/two_phase.sh --help
#
# Both phases run slurm/study.sbatch with the same overrides and the same store
# (HARNESS_STORE_DIR, default runs/store); the phase-1 tasks write runs/slurm/<array id>_<i>/.
# Prints the two job ids. Environment: PYTHON (default .venv/bin/python, else python3).
set -euo pipefail

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '/^# Submit/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
options=()
if [ "${1:-}" = "--sbatch" ]; then
  read -r -a options <<<"${2:?--sbatch needs a quoted list of sbatch options}"
  shift 2
fi
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHON

# the proposer models of the study, as the harness resolves them (validates the overrides too)
models=$("$PYTHON" - "$@" <<'PY'
import sys

from harness.plan import checked, compose

run, confs = checked(compose(*sys.argv[1:]))
print(" ".join(sorted({m for c in confs for m, _ in c.proposers})))
PY
)
read -r -a list <<<"$models"
echo "phase 1: proposals of ${#list[@]} models: $models"
propose=$(PHASE_MODELS="$models" sbatch --parsable "${options[@]}" \
  --job-name=harness-propose --array="0-$(( ${#list[@]} - 1 ))" \
  slurm/study.sbatch "$@" logger.mode=disabled)
study=$(sbatch --parsable "${options[@]}" --job-name=harness-study \
  --dependency="afterok:${propose%%;*}" --kill-on-invalid-dep=yes slurm/study.sbatch "$@")
echo "phase 1 array job ${propose%%;*}; phase 2 study job ${study%%;*} (after ok)"
