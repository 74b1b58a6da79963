"""scripts/gpu_trip.py's split, reassembly and install, with small wheels made here: what the
lent GPU does with the carried pieces, done on CPU (the real trip's figures: docs/gpu_trip.md)."""

import hashlib
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_trip  # noqa: E402 - a script, not a module of the package


def wheel(folder: Path, name: str, size: int) -> Path:
    """A valid pure wheel `name`-1.0 whose module holds VALUE and `size` incompressible bytes."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {name!r}\n",
        f"{name}/blob.bin": random.Random(name).randbytes(size),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }  # fmt: skip
    files[f"{dist}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{dist}/RECORD"])
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return path


@pytest.fixture
def trip(tmp_path, monkeypatch):
    """A trip folder with two wheels (random bytes: the pieces stay large) and a kit file, and
    the device's folder in tmp_path."""
    (tmp_path / "trip/wheels").mkdir(parents=True)
    wheel(tmp_path / "trip/wheels", "trip_alpha", 40_000)
    wheel(tmp_path / "trip/wheels", "trip_beta", 25_000)
    (tmp_path / "trip/kits/m").mkdir(parents=True)
    (tmp_path / "trip/kits/m/config.json").write_text('{"model_type": "llama"}')
    monkeypatch.setattr(gpu_trip, "DEVICE", tmp_path / "device")
    return tmp_path / "trip"


def pack(trip: Path, piece_bytes: int) -> list[Path]:
    gpu_trip.pack(SimpleNamespace(trip=str(trip), piece_mib=piece_bytes / 2**20))
    return sorted(trip.glob("p[0-9][0-9]"))


def receive(piece: Path) -> None:
    gpu_trip.receive(SimpleNamespace(dir=str(piece)))


def test_pieces_fit_and_rejoin_to_the_bundle(trip, capsys):
    pieces = pack(trip, 20_000)
    bundle = (trip / "bundle.tar.gz").read_bytes()
    assert len(pieces) == -(-len(bundle) // 20_000) >= 3
    assert all((p / "piece").stat().st_size <= 20_000 for p in pieces)
    assert b"".join((p / "piece").read_bytes() for p in pieces) == bundle
    manifest = json.loads((pieces[-1] / "manifest.json").read_text())
    assert manifest["bundle_sha256"] == hashlib.sha256(bundle).hexdigest()
    assert manifest["index"] == len(pieces) and len(manifest["pieces"]) == len(pieces)
    plan = capsys.readouterr().out
    assert plan.count("run(command=") == len(pieces)
    assert f"receive {gpu_trip.os.path.relpath(pieces[0], gpu_trip.ROOT)}" in plan
    assert plan.strip().splitlines()[-2].endswith("timeout_s=600)") and "finish" in plan


def test_received_in_order_once_then_installed(trip, capsys):
    pieces = pack(trip, 20_000)
    with pytest.raises(SystemExit, match="came before piece 1"):
        receive(pieces[1])
    receive(pieces[0])
    receive(pieces[0])  # a repeated call (a retried transfer) appends nothing
    assert "piece 1 of" in capsys.readouterr().out.splitlines()[-1]
    for p in pieces[1:]:
        receive(p)
    device = gpu_trip.DEVICE
    assert (device / "bundle").read_bytes() == (trip / "bundle.tar.gz").read_bytes()
    gpu_trip.finish(SimpleNamespace(python=sys.executable, no_check=True, check_args=[]))
    assert (device / "kits/m/config.json").exists()
    got = subprocess.run(
        [sys.executable, "-c", "import trip_alpha, trip_beta; print(trip_alpha.VALUE)"],
        env={"PYTHONPATH": str(device / "site")},
        capture_output=True,
        text=True,
    )
    assert got.stdout.strip() == "trip_alpha", got.stderr


def test_a_damaged_piece_or_bundle_is_refused(trip):
    pieces = pack(trip, 20_000)
    receive(pieces[0])
    damaged = bytearray((pieces[1] / "piece").read_bytes())
    damaged[100] ^= 1
    (pieces[1] / "piece").write_bytes(bytes(damaged))
    with pytest.raises(SystemExit, match="piece 2 is damaged"):
        receive(pieces[1])
    bundle = gpu_trip.DEVICE / "bundle"
    bundle.write_bytes(bundle.read_bytes() + b"x")  # pieces all in, then the file changed
    state = json.loads((gpu_trip.DEVICE / "received.json").read_text())
    (gpu_trip.DEVICE / "received.json").write_text(json.dumps(state | {"pieces": len(pieces)}))
    with pytest.raises(SystemExit, match="sha256 differs"):
        gpu_trip.finish(SimpleNamespace(python=sys.executable, no_check=True, check_args=[]))


def test_pieces_of_a_new_pack_start_a_new_bundle(trip):
    first = pack(trip, 30_000)
    receive(first[0])
    (trip / "kits/m/config.json").write_text('{"model_type": "qwen2"}')
    second = pack(trip, 30_000)
    receive(second[0])  # another bundle's sha256: the old bytes are dropped
    assert (gpu_trip.DEVICE / "bundle").read_bytes() == (second[0] / "piece").read_bytes()


def test_the_wheel_list_is_one_version_each_and_holds_vllm():
    reqs = gpu_trip.requirements()
    names = [gpu_trip.normalise(r.split("==")[0]) for r in reqs]
    assert all("==" in r for r in reqs) and len(set(names)) == len(names)
    assert "vllm==0.26.0" in reqs
    assert not set(names) & gpu_trip.IMAGE  # the image's own packages never travel
