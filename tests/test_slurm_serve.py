"""slurm/serve.sbatch on a real one-node SLURM cluster (scripts/slurm_start.sh): two vLLM server
replicas of SmolLM2 as a job array, their URLs published, a study against both, the replicas
cancelled at the end. Slow (minutes: two servers start on CPU); skipped where sbatch is absent.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import NEEDS_SLURM, write_gsm8k

ROOT = Path(__file__).resolve().parent.parent
pytestmark = NEEDS_SLURM
SMALL_KV = [
    "--kv-cache-memory-bytes",
    "268435456",
    "--max-model-len",
    "2048",
    "--max-num-batched-tokens",
    "2048",
]


def squeue(job: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True
    ).stdout.strip()


def test_study_against_two_server_replicas(tmp_path):
    data = write_gsm8k(tmp_path / "data")
    serve_dir, run_dir = tmp_path / "serve", tmp_path / "run"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHON": sys.executable,
        "REPLICAS": "2",
        "SERVE_MODEL": "smollm2-135m-instruct",
        "SERVE_ENGINE": "cpu",
        "SERVE_ARGS": " ".join(SMALL_KV),
        "SERVE_DIR": str(serve_dir),
        "SERVE_TIMEOUT": "900",
        "SERVER_SBATCH": "--cpus-per-task=1 --mem=3G",
    }
    job = subprocess.run(
        [
            "sbatch", "--parsable", "--cpus-per-task=1", "--mem=4G",
            f"--output={tmp_path}/driver-%j.out", "slurm/serve.sbatch",
            "engine=openai", "model=smollm2-135m-instruct", "method=self_moa", "method.k=2",
            "method.temperature=0.7", "method.max_tokens=16", "method.aggregator_max_tokens=16",
            f"benchmark.data_dir={data}", "benchmark.limit=3", "logger.mode=disabled",
            f"store_dir={tmp_path / 'store'}", f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deadline = time.time() + 1500
    while squeue(job) and time.time() < deadline:
        time.sleep(5)
    driver = next(tmp_path.glob("driver-*.out")).read_text()
    assert not squeue(job), f"still running after 25 min:\n{driver}"
    assert "study exit 0" in driver, driver
    urls = (serve_dir / "urls.txt").read_text().split()
    assert len(urls) == 2 and len(set(urls)) == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/made"] > 0
    for i in range(2):  # both replicas answered chat requests (load-balanced)
        log = (serve_dir / "logs" / f"replica-{i}.log").read_text()
        assert "POST /v1/chat/completions" in log, f"replica {i} got no request"
    array = driver.split("job array ")[1].split()[0]
    assert not squeue(array), "the replicas were not stopped"
    assert not list((serve_dir / "urls").glob("*.url"))  # unpublished when they stopped


STAND_IN = """#!/bin/bash
# python for serve.sbatch without a model: a tiny server for harness.serve, a URL check for
# harness.run, the real interpreter for anything else
if [ "$1 $2" = "-m harness.serve" ]; then
  port=$(echo "$@" | sed -n 's/.*--port \\([0-9]*\\).*/\\1/p')
  exec {python} -c "
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{}}')
http.server.HTTPServer(('0.0.0.0', $port), H).serve_forever()"
elif [ "$1 $2" = "-m harness.run" ]; then
  echo "study args: ${{*:3}}"
  for u in $(cat "$HARNESS_SERVE_URLS"); do curl -sf "$u/models" && echo " $u answered"; done
else
  exec {python} "$@"
fi
"""


def test_replicas_start_publish_serve_the_study_and_stop(tmp_path):
    """The orchestration alone, in seconds: stand-in servers instead of vLLM."""
    python = tmp_path / "python"
    python.write_text(STAND_IN.format(python=sys.executable))
    python.chmod(0o755)
    serve_dir = tmp_path / "serve"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHON": str(python),
        "REPLICAS": "3",
        "SERVE_MODEL": "smollm2-135m-instruct",
        "SERVE_DIR": str(serve_dir),
        "SERVER_SBATCH": "--cpus-per-task=1 --mem=1G",
    }
    job = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=1", "--mem=1G",
         f"--output={tmp_path}/driver.out", "slurm/serve.sbatch", "engine=openai", "x=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deadline = time.time() + 300
    while squeue(job) and time.time() < deadline:
        time.sleep(2)
    driver = (tmp_path / "driver.out").read_text()
    assert "study exit 0" in driver and "study args: engine=openai x=1" in driver, driver
    urls = (serve_dir / "urls.txt").read_text().split()
    assert len(set(urls)) == 3 and driver.count(" answered") == 3
    array = driver.split("job array ")[1].split()[0]
    assert not squeue(array) and not list((serve_dir / "urls").glob("*.url"))
