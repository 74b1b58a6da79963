"""Hostile code in harness.sandbox: each attack must be contained, and each test can fail.

Most attacks run under three policies: every layer ("all"), the kernel layers alone (no audit
hook: uid, namespaces, rlimits; needs root) and the audit hook alone (no uid drop or
namespaces), so a hole in one layer shows up even while another one covers it.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from harness.sandbox import ALL_LAYERS, Limits, processes_of, run

ROOT = os.geteuid() == 0
POLICIES = {
    "all": Limits(),
    "kernel": Limits(audit=False),
    "audit": Limits(privileges=False),
}
needs_root = pytest.mark.skipif(not ROOT, reason="the kernel layers need root")


@pytest.fixture(params=list(POLICIES))
def limits(request) -> Limits:
    if request.param == "kernel" and not ROOT:
        pytest.skip("the kernel layers need root")
    return POLICIES[request.param]


def survivors(result) -> list[int]:
    """Processes left by a run: of its uid, or (without one) of its process group."""
    return processes_of(result.uid) if result.uid is not None else []


def test_ok_and_error_statuses():
    assert run("x = sorted([3, 1])\nassert x == [1, 3]").status == "ok"
    wrong = run("assert 1 == 2, 'nope'")
    assert (wrong.status, wrong.error) == ("error", "AssertionError: nope")
    assert run("1 / 0").error.startswith("ZeroDivisionError")
    # stdlib modules first imported by the code load too (the uid may not read /root/.pyenv)
    assert run("import fractions\nassert 'a'.encode('shift_jis') == b'a'").status == "ok"


@needs_root
def test_every_layer_is_active_as_root():
    assert set(run("pass").layers) == set(ALL_LAYERS)


def test_environment_is_empty_and_working_dir_is_fresh(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SECRET", "s3cret")
    r = run("import os\nprint(sorted(os.environ), os.listdir('.'))")
    assert r.status == "ok"
    assert "s3cret" not in r.stdout and "HARNESS_TEST_SECRET" not in r.stdout
    assert r.stdout.strip().endswith("[]")  # nothing in the working directory


def test_infinite_loop_is_killed_within_its_limit(limits):
    start = time.monotonic()
    r = run("while True:\n    pass", limits, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert r.status == "timeout"
    # killed as soon as the limit passes; the slack is for a loaded machine (2 shared cores)
    assert 1.0 <= r.elapsed_s < 2.0 and elapsed < 3.0
    assert survivors(r) == []


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock():
    r = run("while True:\n    pass", timeout_s=60, cpu_s=1)
    assert r.status == "cpu_limit"  # SIGXCPU, not the wall clock's "timeout"


def test_memory_bomb_hits_the_memory_limit(limits):
    r = run("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", limits, memory_mb=256)
    assert (r.status, r.error) == ("memory", "MemoryError")
    assert r.elapsed_s < limits.timeout_s


def test_fork_bomb_leaves_no_process(limits):
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    r = run(bomb, limits, timeout_s=1.0)
    if limits.audit:  # fork is refused before any process exists
        assert r.status in ("error", "timeout")
    else:
        assert r.status == "timeout"
    assert r.uid is not None or not ROOT or not limits.privileges
    assert survivors(r) == []


@needs_root
def test_processes_that_leave_the_process_group_are_killed_too():
    # a grandchild in a session of its own escapes killpg; the uid sweep must still get it
    escape = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
    )
    r = run(escape, audit=False, timeout_s=3)
    assert r.status == "ok" and r.uid is not None
    assert survivors(r) == []


def write_everywhere(targets: list[Path]) -> str:
    lines = ["import os", "written = []"]
    for t in targets:
        lines += [
            "try:",
            f"    with open({str(t)!r}, 'w') as f:",
            "        f.write('pwned')",
            f"    written.append({str(t)!r})",
            "except OSError as e:",
            "    pass",
            "try:",
            f"    fd = os.open({str(t) + '.raw'!r}, os.O_WRONLY | os.O_CREAT)",
            f"    written.append({str(t) + '.raw'!r})",
            "except OSError:",
            "    pass",
        ]
    lines += ["open('inside.txt', 'w').write('fine')", "print(written)"]
    return "\n".join(lines)


def test_writes_outside_the_temp_dir_do_not_land(limits, tmp_path):
    tag = uuid.uuid4().hex
    tmp_path.chmod(0o777)  # even a world-writable folder of the test must stay untouched
    targets = [
        Path("/tmp") / f"sandbox-escape-{tag}",
        Path("/var/tmp") / f"sandbox-escape-{tag}",
        Path("/dev/shm") / f"sandbox-escape-{tag}",
        tmp_path / f"escape-{tag}",
        Path.cwd() / f"escape-{tag}",
    ]
    r = run(write_everywhere(targets), limits)
    assert r.status == "ok", r  # writing inside its own working directory is allowed
    for t in targets:
        assert not t.exists() and not Path(str(t) + ".raw").exists(), t


def test_network_connect_to_a_local_port_fails(limits):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        src = (
            "import socket\n"
            "s = socket.socket()\n"
            "s.settimeout(2)\n"
            f"s.connect(('127.0.0.1', {port}))\n"
            "s.sendall(b'leak')\n"
        )
        r = run(src, limits)
        assert r.status == "error" and ("PermissionError" in r.error or "OSError" in r.error)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_cannot_signal_the_grader(limits):
    probe = run("import os\nos.kill(os.getppid(), 0)", limits)  # signal 0 only checks
    assert probe.status == "error" and "PermissionError" in probe.error
    r = run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", limits)
    assert r.status == "error" and "PermissionError" in r.error
    os.kill(os.getpid(), 0)  # still alive


def test_cannot_read_the_graders_environment(limits):
    r = run("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())", limits)
    assert r.status == "error" and "PermissionError" in r.error
    assert r.stdout == ""


def test_garbage_output_exit_tricks_and_exceptions_are_not_a_pass():
    fake = '{"status": "ok", "layers": []}'
    r = run(f"import sys\nprint('x' * 100000)\nprint({fake!r})\nsys.stderr.write('junk')\n1/0")
    assert r.status == "error" and r.stdout.endswith(fake + "\n") and r.stderr == "junk"
    assert run("import os\nos._exit(0)").status == "crash"
    assert run("import sys\nsys.exit(0)").status == "error"
    assert run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", audit=False).status == (
        "crash"
    )


def test_huge_output_is_capped_by_the_file_size_limit():
    r = run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", file_mb=1, timeout_s=5)
    assert r.status == "error" and "File too large" in r.error
    assert len(r.stdout) <= 4096


def test_sandbox_runs_do_not_leak_signals_to_the_caller():
    # the child's process group is its own: killing it must not touch ours
    r = run("import os, signal\nos.killpg(0, signal.SIGKILL)", audit=False)
    assert r.status == "crash" and r.returncode == -signal.SIGKILL
    os.kill(os.getpid(), 0)
