"""The GPU trip: vLLM 0.26.0, the packages it and the harness import at start that the lent GPU's
image lacks, and the model kits (config and tokenizer of three real architectures), carried to a
lent GPU in pieces that each fit one device call beside the checkout, then installed and checked.

The lent machine reaches no registry and takes at most 64 MiB a call (the checkout included); it
is given back about 30 s after a call, so the calls must follow each other closely. Here (CPU):

    python scripts/gpu_trip.py probe      # once per vLLM pin: find the import-time set, write
                                          # scripts/gpu_trip.txt (needs python3.12, a venv)
    python scripts/gpu_trip.py download   # the wheels of scripts/gpu_trip.txt -> .trip/wheels
    python scripts/gpu_trip.py kits       # model kits and GSM8K prompts -> .trip/kits
    python scripts/gpu_trip.py pack       # wheels + kits -> .trip/p01 ... .trip/pNN (<= 55 MiB)
    python scripts/gpu_trip.py plan       # prints the device calls, in order

There (one `run` call per piece, back to back; the last one installs and runs the check):

    python3 scripts/gpu_trip.py receive .trip/p01          # carry: [".trip/p01"]
    ...
    python3 scripts/gpu_trip.py receive .trip/pNN && python3 scripts/gpu_trip.py finish
                                                           # carry: [".trip/pNN"], timeout 600

`receive` appends a piece to /tmp/trip/bundle (outside the repository; each piece once, in
order); `finish` checks the bundle's sha256, unpacks it, installs every wheel with
`pip install --no-deps --no-index --target /tmp/trip/site`, prints which start-up imports still
fail, and runs scripts/gpu_check.py with the kits ($OUT/check: its table and JSON come back).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIP = ROOT / ".trip"  # ignored (.gitignore): wheels, kits, pieces
LOCK = ROOT / "scripts" / "gpu_trip.txt"
DEVICE = Path(os.environ.get("GPU_TRIP_DIR", "/tmp/trip"))  # on the device, outside the repo
PIECE_MIB = 55  # + the checkout (~2 MiB) stays under the 64 MiB a call carries
PYTHON_VERSION = "3.12"  # the lent image's python3 (3.12.3, ../shared/docs/gpu.md)
PLATFORM = [
    "--only-binary=:all:",
    "--python-version", PYTHON_VERSION,
    "--implementation", "cp",
    *[f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35, 39)],
    "--platform=manylinux2014_x86_64",
    "--platform=manylinux1_x86_64",
]  # fmt: skip
SDIST_ONLY = {"antlr4-python3-runtime"}  # no wheel on PyPI: built here with `pip wheel`

# The lent image's packages (../shared/docs/gpu.md, .library/device/KINDS.md, read 2026-11-17):
# never carried. Normalised names (PEP 503).
IMAGE = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax
    e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist
    fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
    imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2
    joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
    lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
    numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
    nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
    nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
    nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
    opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
    pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo
    pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov
    pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex
    requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
    sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
    statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
    torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
    typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp""".split()
)
# What an earlier try on the device needed (../shared/docs/gpu.md): a head start for the probe,
# which keeps only what an import uses.
SEED = """pydantic pydantic-core annotated-types typing-inspection msgspec pyzmq cbor2 blake3
pybase64 setproctitle ijson cachetools openai==3.57.0 jiter openai-harmony mistral-common
pydantic-extra-types pycountry compressed-tensors depyf==0.20.0 astor lark==1.2.2 interegular
outlines-core==0.2.14 llguidance<1.8 xgrammar==0.2.7 apache-tvm-ffi==0.1.10
lm-format-enforcer==0.11.3 partial-json-parser
jsonschema referencing rpds-py jsonschema-specifications watchfiles python-json-logger loguru
truststore hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 submitit==1.5.4
math-verify==0.9.0 latex2sympy2-extended""".split()
# import name -> distribution, where they differ by more than '_' / '-'
DIST_OF = {
    "zmq": "pyzmq", "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python-headless",
    "google": "protobuf", "tvm_ffi": "apache-tvm-ffi", "pythonjsonlogger": "python-json-logger",
    "cpuinfo": "py-cpuinfo", "lmformatenforcer": "lm-format-enforcer",
    "antlr4": "antlr4-python3-runtime",
    "hydra": "hydra-core", "dateutil": "python-dateutil", "attr": "attrs", "rpds": "rpds-py",
    "multipart": "python-multipart", "dotenv": "python-dotenv", "jose": "python-jose",
    "sklearn": "scikit-learn", "pynvml": "nvidia-ml-py", "jsonschema_specifications":
    "jsonschema-specifications", "google.rpc": "googleapis-common-protos",
    "opentelemetry": "opentelemetry-api", "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.semconv": "opentelemetry-semantic-conventions",
    "opentelemetry.semconv_ai": "opentelemetry-semantic-conventions-ai",
    "opentelemetry.proto": "opentelemetry-proto",
    "opentelemetry.exporter.otlp.proto.common": "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry.exporter.otlp.proto.grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
}  # fmt: skip
MUST_IMPORT = ("vllm:LLM", "harness.run")
# What the probe imports: vLLM's entry point, the harness, and the vLLM modules an engine start on
# CUDA imports (on CPU some of those fail for want of CUDA: only missing packages count).
IMPORTS = [
    "vllm:LLM",
    "harness.run",
    "harness.study",
    "harness.engines.vllm",
    "harness.score",
    "harness.benchmarks.gsm8k",
    "vllm.platforms.cuda",
    "vllm.v1.engine.core",
    "vllm.v1.engine.llm_engine",
    "vllm.v1.executor.multiproc_executor",
    "vllm.v1.executor.uniproc_executor",
    "vllm.v1.worker.gpu_worker",
    "vllm.v1.worker.gpu_model_runner",
    "vllm.v1.attention.backends.flash_attn",
    "vllm.v1.sample.sampler",
    "vllm.v1.structured_output",
    "vllm.v1.core.sched.scheduler",
    "vllm.model_executor.model_loader",
    "vllm.model_executor.model_loader.dummy_loader",
    "vllm.model_executor.models.llama",
    "vllm.model_executor.models.qwen2",
    "vllm.model_executor.models.gemma2",
    "vllm.model_executor.models.gemma3",
    "vllm.compilation.backends",
    "vllm.entrypoints.chat_utils",
    "vllm.distributed.parallel_state",
    "vllm.tokenizers",
    # imported later on the check's path, inside functions (an import probe alone misses them)
    "math_verify",  # the harness grades GSM8K with it (harness.benchmarks.gsm8k)
    "depyf",  # vLLM's compile wrapper decompiles with it (vllm/compilation/wrapper.py)
    "setproctitle",  # names vLLM's engine-core process (skipped silently when missing)
]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_of(module: str) -> str:
    """The distribution of a module: DIST_OF's longest dotted prefix of it, else its top name."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in DIST_OF:
            return normalise(DIST_OF[".".join(parts[:n])])
    return normalise(parts[0])


def import_report(imports: list[str] = IMPORTS) -> dict:
    """Each import of `imports` tried: {"missing": [module, ...], "failed": {name: error}}.
    A missing top-level module of another distribution is "missing"; any other failure (a CUDA
    library absent on a CPU machine, say) is "failed"."""
    import importlib

    missing, failed = [], {}
    for spec in imports:
        module, _, attr = spec.partition(":")
        try:
            got = importlib.import_module(module)
            if attr:
                getattr(got, attr)
        except ModuleNotFoundError as e:
            top = (e.name or "").split(".")[0]
            if top and top not in ("vllm", "harness"):
                missing.append(e.name)
            else:
                failed[spec] = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - reported, not raised: a probe
            failed[spec] = f"{type(e).__name__}: {str(e)[:200]}"
    modules = sorted({name.split(".")[0] for name in sys.modules})
    return {"missing": list(dict.fromkeys(missing)), "failed": failed, "modules": modules}


def pip(python: str, *args: str) -> None:
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([python, "-m", "pip", *args], check=True, env=env)


def installed(site: Path) -> dict[str, str]:
    """{normalised name: version} of the distributions in a --target folder."""
    found = {}
    for info in site.glob("*.dist-info"):
        meta = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.M).group(1).strip()
        found[normalise(name)] = re.search(r"^Version: (.+)$", meta, re.M).group(1).strip()
    return found


def specifiers_of(site: Path) -> dict:
    """{name: SpecifierSet} of the requirements (extras and other Pythons left out) of every
    distribution in `site`: vLLM's own (fastapi<0.137), pydantic's exact pydantic-core, ..."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    env = {"python_version": PYTHON_VERSION, "python_full_version": PYTHON_VERSION + ".3",
           "extra": "", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64"}  # fmt: skip
    found: dict = {}
    for meta in site.glob("*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if not line.startswith("Requires-Dist: "):
                continue
            req = Requirement(line.split(": ", 1)[1])
            if req.specifier and (req.marker is None or req.marker.evaluate(env)):
                name = normalise(req.name)
                found[name] = found.get(name, SpecifierSet()) & req.specifier
    return found


def probe(args) -> None:
    """Grow the import-time set: import IMPORTS with the probe venv (torch 2.11.0 and the image's
    packages) plus a --target folder (vLLM --no-deps and what was added), add the distribution of
    each missing module, again, until nothing is missing. A missing package the image holds goes
    into the venv (the image has it), any other into the target folder (the trip)."""
    python, site = args.python, Path(args.site)
    wheel = next(iter(sorted((TRIP / "wheels").glob("vllm-0.26.0-*.whl"))), None)
    if site.exists() and not args.keep:
        shutil.rmtree(site)
    site.mkdir(parents=True, exist_ok=True)
    if "vllm" not in installed(site):
        pip(
            python,
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel or "vllm==0.26.0"),
        )
    seed = [x for x in args.seed if normalise(x.split("=")[0]) not in installed(site)]
    if seed:  # a head start (what an earlier try needed): kept only if something imports it
        pip(python, "install", "-q", "--no-deps", "--target", str(site), *seed)
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from gpu_trip import import_report; print('REPORT' + json.dumps(import_report()))"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    for _ in range(args.rounds):
        have, specs = installed(site), specifiers_of(site)
        for dist, spec in specs.items():  # one that another's requirement rules out
            if dist in have and not spec.contains(have[dist], prereleases=True):
                print(f"probe: {dist} {have[dist]} -> {dist}{spec} (required)", flush=True)
                pip(python, "install", "-q", "--no-deps", "--target", str(site), "--upgrade",
                    f"{dist}{spec}")  # fmt: skip
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("REPORT")), None)
        if line is None:
            sys.exit(f"probe: the import run crashed:\n{out.stderr[-3000:]}")
        report = json.loads(line[len("REPORT") :])
        if not report["missing"]:
            break
        dist = dist_of(report["missing"][0])
        req = f"{dist}{specs.get(dist, '')}"
        where = "image (venv)" if dist in IMAGE else "trip"
        print(f"probe: missing {report['missing'][0]} -> {req} [{where}]", flush=True)
        target = [] if dist in IMAGE else ["--target", str(site), "--upgrade"]
        pip(python, "install", "-q", "--no-deps", *target, req)
    else:
        sys.exit(f"probe: still missing after {args.rounds} rounds: {report['missing']}")
    for spec, error in report["failed"].items():
        print(f"probe: {spec} does not import here ({error}); no package is missing for it")
    broken = [x for x, e in report["failed"].items() if x in MUST_IMPORT or "libcuda" not in e]
    if broken and not args.allow_failed:  # a version clash, say: fix the pins, probe again
        sys.exit(f"probe: {', '.join(broken)} fail here for another reason than CUDA: see above")
    unused = sorted(
        d for d, tops in top_levels(site).items() if not set(tops) & set(report["modules"])
    )
    for dist in unused:  # nothing of it was imported: not part of the set
        print(f"probe: {dist} was not imported: dropped")
        for path in distribution_files(site, dist):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    found = installed(site)
    lines = [f"{name}=={version}" for name, version in sorted(found.items())]
    LOCK.write_text(
        "# The GPU trip's wheels (scripts/gpu_trip.py probe): vLLM 0.26.0 and every package it\n"
        "# and the harness import at start that the lent image lacks, found by importing on CPU\n"
        f"# ({len(lines)} distributions). One name==version a line.\n" + "\n".join(lines) + "\n"
    )
    print(f"probe: {len(lines)} distributions -> {LOCK.relative_to(ROOT)}")


def distribution_files(site: Path, dist: str) -> list[Path]:
    """The top-level files and folders of one distribution in a --target folder (its RECORD)."""
    info = next(i for i in site.glob("*.dist-info") if normalise(i.name.rsplit("-", 1)[0]) == dist)
    tops = {line.split(",")[0].split("/")[0] for line in (info / "RECORD").read_text().splitlines()}
    return sorted(site / t for t in tops if t and t != "..")


def top_levels(site: Path) -> dict[str, list[str]]:
    """{distribution: its importable top-level names} in a --target folder."""
    found = {}
    for info in site.glob("*.dist-info"):
        dist = normalise(info.name.rsplit("-", 1)[0])
        tops = [p.name.split(".")[0] for p in distribution_files(site, dist)]
        found[dist] = [t for t in tops if not t.endswith(("dist-info", "libs")) and t != "bin"]
    return found


def requirements() -> list[str]:
    return [x.strip() for x in LOCK.read_text().splitlines() if x.strip() and x[0] != "#"]


def download(args) -> None:
    """Every wheel of scripts/gpu_trip.txt for the device (cp312, manylinux x86_64)."""
    out = TRIP / "wheels"
    out.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    binary = [r for r in reqs if normalise(r.split("==")[0]) not in SDIST_ONLY]
    pip(sys.executable, "download", "-q", "--no-deps", *PLATFORM, "-d", str(out), *binary)
    for req in sorted(set(reqs) - set(binary)):
        pip(sys.executable, "wheel", "-q", "--no-deps", "-w", str(out), req)
    wanted = {normalise(r.split("==")[0]) for r in reqs}
    names = [normalise(w.name.split("-")[0]) for w in out.glob("*.whl")]
    extra = sorted(set(names) - wanted)
    for w in out.glob("*.whl"):
        if normalise(w.name.split("-")[0]) in extra:
            w.unlink()  # left from an older list
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        sys.exit(f"download: two versions of {doubles} in {out}: delete the older")
    mb = sum(w.stat().st_size for w in out.glob("*.whl")) / 1e6
    print(f"download: {len(wanted)} wheels, {mb:.1f} MB in {out.relative_to(ROOT)}")


def kits(args) -> None:
    from gpu_kits import build_kits, copy_prompts

    out = TRIP / "kits"
    if out.exists():
        shutil.rmtree(out)
    made = build_kits(args.size, out, layers=args.layers or None)
    copy_prompts(out / "data")
    mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"kits: {', '.join(made)} ({mb:.1f} MB) in {out.relative_to(ROOT)}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pack(args) -> None:
    """.trip/wheels and .trip/kits as one tar.gz, split into .trip/pNN/piece (+ manifest.json)."""
    trip = Path(args.trip)
    bundle = trip / "bundle.tar.gz"  # the tokenizers shrink to a quarter; the wheels hardly
    with tarfile.open(bundle, "w:gz", compresslevel=6) as tar:
        for part in ("wheels", "kits"):
            if (trip / part).is_dir():
                tar.add(trip / part, arcname=part)
    pieces = split(bundle, trip, int(args.piece_mib * 2**20))
    print(f"pack: {bundle.stat().st_size / 1e6:.1f} MB in {len(pieces)} pieces: {trip}/p01 ...")
    print_plan(trip)


def split(bundle: Path, trip: Path, size: int) -> list[Path]:
    """`bundle` cut into pieces of at most `size` bytes: trip/pNN/piece, each beside a manifest
    naming every piece's size and sha256 and the whole bundle's."""
    for old in trip.glob("p[0-9][0-9]"):
        shutil.rmtree(old)
    dirs, meta = [], []
    with open(bundle, "rb") as f:
        while chunk := f.read(size):
            d = trip / f"p{len(dirs) + 1:02d}"
            d.mkdir()
            (d / "piece").write_bytes(chunk)
            dirs.append(d)
            meta.append({"bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {"bundle_sha256": sha256(bundle), "bundle_bytes": bundle.stat().st_size}
    manifest["pieces"] = meta
    for i, d in enumerate(dirs):
        (d / "manifest.json").write_text(json.dumps(manifest | {"index": i + 1}, indent=1))
    return dirs


def plan_text(trip: Path = TRIP) -> str:
    """The device calls for the pieces in `trip`, in order."""
    dirs = sorted(trip.glob("p[0-9][0-9]"))
    if not dirs:
        sys.exit(f"plan: no pieces in {trip}: run `pack` first")
    rel = os.path.relpath(trip, ROOT)
    lines = [f"Device calls, back to back (each within ~30 s of the last reply): {len(dirs)}"]
    for d in dirs[:-1]:
        lines.append(
            f'  run(command="python3 scripts/gpu_trip.py receive {rel}/{d.name}", '
            f'carry=["{rel}/{d.name}"], timeout_s=120)'
        )
    last = f"{rel}/{dirs[-1].name}"
    lines.append(
        f'  run(command="python3 scripts/gpu_trip.py receive {last} && '
        f'python3 scripts/gpu_trip.py finish", carry=["{last}"], timeout_s=600)'
    )
    lines.append("Then give_back. If a call fails, repeat it: a piece already in is skipped.")
    return "\n".join(lines)


def print_plan(trip: Path = TRIP) -> None:
    print("\n" + plan_text(trip))


def receive(args) -> None:
    """Append the piece in `dir` to DEVICE/bundle, once and in order (a repeat is a no-op)."""
    src = Path(args.dir)
    manifest = json.loads((src / "manifest.json").read_text())
    index, pieces = manifest["index"], manifest["pieces"]
    DEVICE.mkdir(parents=True, exist_ok=True)
    state = DEVICE / "received.json"
    got = json.loads(state.read_text()) if state.exists() else {"sha": manifest["bundle_sha256"]}
    if got["sha"] != manifest["bundle_sha256"]:  # pieces of another pack: start again
        (DEVICE / "bundle").unlink(missing_ok=True)
        got = {"sha": manifest["bundle_sha256"]}
    have = got.get("pieces", 0)
    if index <= have:
        print(f"receive: piece {index} of {len(pieces)} already in")
        return
    if index != have + 1:
        sys.exit(
            f"receive: piece {index} came before piece {have + 1}: send that one first (on a "
            "fresh machine, the one before was given back: start again from the first piece)"
        )
    data = (src / "piece").read_bytes()
    if hashlib.sha256(data).hexdigest() != pieces[index - 1]["sha256"]:
        sys.exit(f"receive: piece {index} is damaged (sha256 differs): send it again")
    with open(DEVICE / "bundle", "ab") as f:
        f.write(data)
    state.write_text(json.dumps(got | {"pieces": index}))
    print(f"receive: piece {index} of {len(pieces)} in ({len(data) / 1e6:.1f} MB)")


def finish(args) -> None:
    """Check the whole bundle, unpack, install with --no-deps into DEVICE/site, report the
    imports, run gpu_check (unless --no-check)."""
    start = time.perf_counter()
    state = json.loads((DEVICE / "received.json").read_text())
    bundle = DEVICE / "bundle"
    if sha256(bundle) != state["sha"]:
        sys.exit(f"finish: the bundle's sha256 differs from the manifest's ({bundle}): resend")
    for part in ("wheels", "kits", "site"):
        shutil.rmtree(DEVICE / part, ignore_errors=True)
    with tarfile.open(bundle) as tar:
        tar.extractall(DEVICE, filter="data")
    wheels = sorted(str(w) for w in (DEVICE / "wheels").glob("*.whl"))
    print(f"finish: bundle checked and unpacked ({time.perf_counter() - start:.1f} s)", flush=True)
    t = time.perf_counter()
    subprocess.run(
        [args.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
         "--no-cache-dir", "--disable-pip-version-check", "--target", str(DEVICE / "site"),
         *wheels],
        check=True,
    )  # fmt: skip
    print(f"finish: {len(wheels)} wheels installed in {time.perf_counter() - t:.1f} s", flush=True)
    if args.no_check:
        return
    env = {**os.environ, "PYTHONPATH": f"{DEVICE / 'site'}{os.pathsep}{ROOT}"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    out = os.environ.get("OUT", str(DEVICE / "out"))
    cmd = [args.python, str(ROOT / "scripts/gpu_check.py"), "--kits", str(DEVICE / "kits"),
           "--out", f"{out}/check", *args.check_args]  # fmt: skip
    sys.exit(subprocess.run(cmd, env=env, cwd=ROOT).returncode)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__,
        epilog=plan_text() if list(TRIP.glob("p[0-9][0-9]")) else "(no pieces yet: pack)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe", help="find the import-time set (python3.12 venv with torch 2.11)")
    p.add_argument("--python", default="/tmp/tripvenv/bin/python")
    p.add_argument("--site", default="/tmp/trip/probe-site")
    p.add_argument("--rounds", type=int, default=150)
    p.add_argument("--keep", action="store_true", help="keep what the site folder holds")
    p.add_argument("--seed", nargs="*", default=SEED, help="installed first, kept if imported")
    p.add_argument("--allow-failed", action="store_true", help="write the list all the same")
    sub.add_parser("download", help="the wheels of scripts/gpu_trip.txt -> .trip/wheels")
    k = sub.add_parser("kits", help="model kits -> .trip/kits")
    k.add_argument("--size", default="gpu", choices=["gpu", "cpu"])
    k.add_argument("--layers", type=int, default=8,
                   help="layers of each kit (default 8: a start of seconds, 2-3B parameters at "
                   "full width); 0: every layer of the real model")  # fmt: skip
    p = sub.add_parser("pack", help="wheels + kits -> .trip/pNN pieces")
    p.add_argument("--piece-mib", type=float, default=PIECE_MIB)
    p.add_argument("--trip", default=str(TRIP))
    sub.add_parser("plan", help="print the device calls")
    r = sub.add_parser("receive", help="(device) append a carried piece to /tmp/trip/bundle")
    r.add_argument("dir")
    f = sub.add_parser("finish", help="(device) check, unpack, install, run gpu_check")
    f.add_argument("--python", default=sys.executable)
    f.add_argument("--no-check", action="store_true")
    f.add_argument("check_args", nargs=argparse.REMAINDER, help="passed on to gpu_check.py")
    args = ap.parse_args()
    if args.cmd == "plan":
        print_plan()
    else:
        {"probe": probe, "download": download, "kits": kits, "pack": pack, "receive": receive,
         "finish": finish}[args.cmd](args)  # fmt: skip


if __name__ == "__main__":
    main()
