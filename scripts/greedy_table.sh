#!/usr/bin/env bash
# Greedy (single, T=0) score of each CPU model on the first N items of every benchmark, one run
# per (model, benchmark); judged benchmarks use benchmark.judge (default: Qwen2.5-Coder-0.5B).
#   scripts/greedy_table.sh [N] [extra overrides...]     # then: python scripts/greedy_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"; shift || true
out="runs/greedy"
mkdir -p "$out"
for model in qwen2.5-coder-0.5b-instruct smollm2-135m-instruct gemma-3-270m; do
  for bench in gsm8k math500 mmlu mmlu_redux cruxeval alpaca_eval mt_bench; do
    dir="$out/${bench}_${model}"
    [ -f "$dir/metrics.json" ] && continue
    # vLLM on CPU slows down many times over when two engines share the cores: wait for others
    while pgrep -f "python -m harness\.(run|agreement) " > /dev/null; do sleep 20; done
    start=$(date +%s)
    .venv/bin/python -m harness.run method=single baseline=false "model=$model" \
      "benchmark=$bench" "benchmark.limit=$n" logger.mode=disabled "hydra.run.dir=$dir" "$@" \
      > "$dir.log" 2>&1 || echo "FAILED: $bench $model (see $dir.log)"
    echo "$bench $model: $(( $(date +%s) - start )) s"
  done
done
