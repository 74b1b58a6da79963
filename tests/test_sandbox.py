"""Hostile code in harness.sandbox: each attack must be contained, and each test can fail.

Every probe runs under two graders: root (this process, when the tests run as root) and a
normal user (a forked copy of this process that first drops to a fresh uid with no groups, as a
grader on a SLURM cluster runs). Most also run under two policies: every layer ("all") and the
kernel layers alone ("kernel": no audit hook), so a hole in the namespaces shows up even while
the hook covers it. The last tests check the opt-out mode ("trusted") and its audit hook.
"""

from __future__ import annotations

import os
import pickle
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from harness import benchmarks, sandbox
from harness.benchmarks import get
from harness.errors import ConfigError
from harness.sandbox import CONTAINED_LAYERS, Limits, processes_of

ROOT = os.geteuid() == 0
RLIMITS = [getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")]
GRADER_PID = "GRADER_PID"  # replaced, in the grader, by the grader's own pid


def _user_python(uid: int) -> str | None:
    """An interpreter a fresh uid can run (pyenv's under /root is not one)."""
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
        try:
            ran = subprocess.run(
                [python, "-I", "-S", "-c", "import ctypes, json, select"],
                user=uid,
                group=uid,
                extra_groups=[],
                env={"PATH": "/usr/bin:/bin"},
                cwd="/",
                capture_output=True,
            )
        except (OSError, TypeError):
            continue
        if ran.returncode == 0:
            return python
    return None


class Grader:
    """Calls a function as root (in this process) or as a fresh unprivileged uid (forked)."""

    def __init__(self, kind: str, tmp: Path):
        self.kind, self.uid, self.python, self.child = kind, None, None, None
        if kind == "user" and ROOT:
            self.uid = random.randrange(1_000_000, 1_400_000)
            self.python = _user_python(self.uid)
            if self.python is None:
                pytest.skip("no Python interpreter an unprivileged user can run (apt python3)")
            self.child = str(tmp / "child.py")  # the child program, readable by that uid
            for name in ("child.py", "literal.py"):  # the child loads literal.py beside it
                shutil.copy(Path(sandbox.CHILD).with_name(name), tmp / name)
                os.chmod(tmp / name, 0o644)

    def __call__(self, fn, *args, **kwargs):
        if self.uid is None:
            return fn(*args, **kwargs)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the unprivileged grader
            os.close(read)
            try:
                os.setgroups([])
                os.setresgid(self.uid, self.uid, self.uid)
                os.setresuid(self.uid, self.uid, self.uid)
                sandbox.caller.PYTHON, sandbox.caller.CHILD = self.python, self.child
                os.chdir("/")
                answer = ("ok", fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 (sent back and raised in the test)
                answer = ("raised", e)
            with os.fdopen(write, "wb") as f:
                pickle.dump(answer, f)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        how, value = pickle.loads(data)
        if how == "raised":
            raise value
        return value

    def survivors(self, result) -> list[int]:
        """Processes left behind: of the run's fresh uid (root), or of the user's uid."""
        uid = self.uid if self.uid is not None else result.uid
        return processes_of(uid) if uid is not None else []

    def run(self, source: str, limits: Limits | None = None, **overrides):
        return self(_probe, source, limits, overrides)


def _probe(source: str, limits, overrides):
    """In the grader: run `source` (GRADER_PID replaced) and check the grader is untouched."""
    before = [resource.getrlimit(r) for r in RLIMITS]
    result = sandbox.run(source.replace(GRADER_PID, str(os.getpid())), limits, **overrides)
    assert [resource.getrlimit(r) for r in RLIMITS] == before, "the grader's rlimits changed"
    os.kill(os.getpid(), 0)
    return result


@pytest.fixture(scope="module")
def shared_tmp():
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["root", "user"], scope="module")
def grader(request, shared_tmp) -> Grader:
    if request.param == "root" and not ROOT:
        pytest.skip("the root grader needs root")
    return Grader(request.param, shared_tmp)


@pytest.fixture(params=["all", "kernel"])
def limits(request) -> Limits:
    return Limits(audit=request.param == "all")


def test_check_passes_here_and_names_bad_modes():
    sandbox.check()
    sandbox.check("trusted")
    with pytest.raises(ConfigError, match="benchmark.sandbox='loose'; allowed: contained"):
        sandbox.check("loose")


def test_check_names_what_the_kernel_refused(monkeypatch, tmp_path):
    # a child whose namespace setup fails (here: no mount point for the new root)
    child = tmp_path / "child.py"
    text = Path(sandbox.CHILD).read_text()
    child.write_text(text.replace('_NEW_ROOT = "/tmp"', '_NEW_ROOT = "/nonexistent-mount"'))
    shutil.copy(Path(sandbox.CHILD).with_name("literal.py"), tmp_path / "literal.py")
    monkeypatch.setattr(sandbox.caller, "CHILD", str(child))
    monkeypatch.setattr(sandbox.caller, "_checked", {})
    with pytest.raises(ConfigError, match="cannot contain .*nonexistent-mount.*sandbox=trusted"):
        sandbox.check()
    with pytest.raises(ConfigError):  # every run refuses too, before running anything
        sandbox.run("pass")


def test_ok_and_error_statuses(grader):
    assert grader.run("x = sorted([3, 1])\nassert x == [1, 3]").status == "ok"
    wrong = grader.run("assert 1 == 2, 'nope'")
    assert (wrong.status, wrong.error) == ("error", "AssertionError: nope")
    assert grader.run("1 / 0").error.startswith("ZeroDivisionError")
    # stdlib modules first imported by the code load too (also C extensions)
    src = "import fractions, decimal, json, zlib\nassert 'a'.encode('shift_jis') == b'a'"
    assert grader.run(src).status == "ok"


def test_every_layer_is_active(grader):
    assert grader(os.geteuid) == (0 if grader.kind == "root" else grader.uid or os.geteuid())
    assert set(grader.run("pass").layers) == set(CONTAINED_LAYERS)


def test_environment_is_empty_and_working_dir_is_a_fresh_tmpfs(grader, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SECRET", "s3cret")
    r = grader.run("import os\nprint(sorted(os.environ), os.getcwd(), os.listdir('.'))")
    assert r.status == "ok"
    assert "s3cret" not in r.stdout and "HARNESS_TEST_SECRET" not in r.stdout
    assert r.stdout.strip().endswith("/tmp []")


def test_the_graders_files_are_not_there(grader):
    src = f"import os\nprint(sorted(os.listdir('/')), os.path.exists({str(Path.cwd())!r}))"
    r = grader.run(src)
    assert r.status == "ok", r
    assert "work" not in r.stdout and "home" not in r.stdout and r.stdout.strip().endswith("False")


def test_infinite_loop_is_killed_within_its_limit(grader, limits):
    start = time.monotonic()
    r = grader.run("while True:\n    pass", limits, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert r.status == "timeout"
    # killed as soon as the limit passes; the slack is for a loaded machine (2 shared cores)
    assert 1.0 <= r.elapsed_s < 2.0 and elapsed < 3.0
    assert grader.survivors(r) == []


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock(grader):
    r = grader.run("while True:\n    pass", timeout_s=60, cpu_s=1)
    assert r.status == "cpu_limit"  # SIGXCPU, not the wall clock's "timeout"


def test_memory_bomb_hits_the_memory_limit(grader, limits):
    src = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))"
    r = grader.run(src, limits, memory_mb=256)
    assert (r.status, r.error) == ("memory", "MemoryError")
    assert r.elapsed_s < limits.timeout_s


def test_fork_bomb_leaves_no_process(grader, limits):
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    r = grader.run(bomb, limits, timeout_s=1.0)
    assert r.status in ("error", "timeout") if limits.audit else r.status == "timeout"
    assert grader.survivors(r) == []


def test_processes_are_capped_by_nproc(grader):
    src = (
        "import os, time\nn = 0\nwhile n < 100:\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n"
        "        os._exit(0)\n    n += 1\nprint(n)\n"
    )
    r = grader.run(src, audit=False, nproc=8)
    assert r.status == "ok" and 0 < int(r.stdout) < 8
    assert grader.survivors(r) == []


def test_daemons_do_not_outlive_the_run(grader, limits):
    # a grandchild in a session of its own escapes killpg; the pid namespace still ends it
    escape = (
        "import os, time\n"
        "try:\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        os._exit(0)\n"
        "except PermissionError:\n"
        "    pass\n"
        "time.sleep(0.2)\n"
    )
    r = grader.run(escape, limits, timeout_s=5)
    assert r.status == "ok"
    assert grader.survivors(r) == []


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


def _own_dir() -> str:
    """A folder the grader's own uid may write (made in the grader)."""
    path = tempfile.mkdtemp(prefix="sandbox-own-")
    os.chmod(path, 0o755)
    return path


def test_writes_outside_the_working_dir_do_not_land(grader, limits, shared_tmp):
    tag = uuid.uuid4().hex
    open_dir = shared_tmp / f"open-{tag}"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # even a world-writable folder must stay untouched
    own = Path(grader(_own_dir))  # and one the grader's uid owns
    targets = [
        Path("/tmp") / f"sandbox-escape-{tag}",
        Path("/var/tmp") / f"sandbox-escape-{tag}",
        Path("/dev/shm") / f"sandbox-escape-{tag}",
        open_dir / "escape",
        own / "escape",
        Path.cwd() / f"escape-{tag}",
    ]
    r = grader.run(write_everywhere(targets), limits)
    assert r.status == "ok", r  # writing inside its own working directory is allowed
    for t in targets:
        assert not t.exists() and not Path(str(t) + ".raw").exists(), t
    shutil.rmtree(own, ignore_errors=True)


def test_disk_flood_hits_the_tmpfs_cap(grader, limits):
    flood = "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'x' * 2**20)\n    i += 1\n"
    r = grader.run(flood, limits, disk_mb=8)
    assert r.status == "error" and "No space left on device" in r.error, r
    inodes = "i = 0\nwhile True:\n    open(f'f{i}', 'w').close()\n    i += 1\n"
    r = grader.run(inodes, limits, files=200)
    assert r.status == "error" and "No space left on device" in r.error, r


def test_network_connect_to_a_local_port_fails(grader, limits):
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
        r = grader.run(src, limits)
        assert r.status == "error" and ("PermissionError" in r.error or "OSError" in r.error)
        with pytest.raises(BlockingIOError):
            listener.accept()


SIGNAL_THE_GRADER = f"""
import os, signal
refused = []
for target in ({GRADER_PID}, -{GRADER_PID}, -1, os.getppid()):
    for sig in (0, signal.SIGKILL):
        try:
            os.kill(target, sig)
        except OSError as e:
            refused.append(type(e).__name__)
try:
    os.killpg({GRADER_PID}, signal.SIGKILL)
except OSError as e:
    refused.append(type(e).__name__)
print(refused)
"""


def test_cannot_signal_the_grader(grader, limits):
    r = grader.run(SIGNAL_THE_GRADER, limits)  # _probe checks the grader is still alive
    assert r.status == "ok", r
    assert "ProcessLookupError" in r.stdout or "PermissionError" in r.stdout
    os.kill(os.getpid(), 0)


def test_cannot_change_the_graders_rlimits(grader, limits):
    src = (
        "import os, resource\nrefused = 0\n"
        f"for pid in ({GRADER_PID}, os.getppid()):\n"
        "    try:\n"
        "        resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3))\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "print(refused)\n"
    )
    r = grader.run(src, limits)  # _probe checks the grader's rlimits are unchanged
    assert r.status == "ok", r
    assert int(r.stdout) >= 1


def test_cannot_read_the_graders_memory_or_environment(grader, limits):
    src = (
        "import os\nfound = []\n"
        f"for path in ('/proc/{GRADER_PID}/environ', '/proc/{GRADER_PID}/mem', "
        "'/proc/1/environ', '/proc/1/mem'):\n"
        "    try:\n"
        "        with open(path, 'rb') as f:\n"
        "            found.append(f.read(64))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(found)\n"
    )
    r = grader.run(src, limits)
    assert r.status == "ok" and r.stdout.strip() == "[]", r


def test_garbage_output_exit_tricks_and_exceptions_are_not_a_pass(grader):
    fake = '{"status": "ok", "layers": []}'
    r = grader.run(
        f"import sys\nprint('x' * 100000)\nprint({fake!r})\nsys.stderr.write('junk')\n1/0"
    )
    assert r.status == "error" and r.stdout.endswith(fake + "\n") and r.stderr == "junk"
    assert grader.run("import os\nos._exit(0)").status == "crash"
    assert grader.run("import sys\nsys.exit(0)").status == "error"
    segv = grader.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", audit=False)
    assert (segv.status, segv.returncode) == ("crash", -signal.SIGSEGV)


def test_huge_output_is_capped_by_the_file_size_limit(grader):
    r = grader.run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", file_mb=1)
    assert r.status == "error" and "File too large" in r.error
    assert len(r.stdout) <= 4096


def test_killing_its_own_process_group_does_not_reach_the_caller(grader):
    r = grader.run("import os, signal\nos.killpg(0, signal.SIGKILL)", audit=False)
    assert r.status == "crash" and r.returncode == -signal.SIGKILL
    os.kill(os.getpid(), 0)


# ------------------------------------------------------------------- forged verdicts ----

LYING = "type('Liar', ({base}), {{'__eq__': lambda s, o: True, '__ne__': lambda s, o: False}})"


def _evaluate(expression: str, setup: str = "", **overrides):
    return sandbox.evaluate(expression.replace(GRADER_PID, str(os.getpid())), setup, **overrides)


def test_values_come_back_as_plain_literals(grader):
    r = grader(_evaluate, "f(2)", "def f(x):\n    return [x, (1,), {'a': {2}}, None, b'z', 1j]")
    assert r.status == "ok" and r.value == [2, (1,), {"a": {2}}, None, b"z", 1j]
    assert grader(_evaluate, "f").status == "error"  # no f in an empty namespace


@pytest.mark.parametrize(
    "expression, value",
    [
        (LYING.format(base="") + "()", None),  # no literal: an error
        (LYING.format(base="str,") + "('zzz')", "zzz"),  # reduced to its str value
        (LYING.format(base="list,") + "([1])", [1]),
        (LYING.format(base="int,") + "(7)", 7),
    ],
)
def test_an_object_whose_eq_lies_does_not_pass(grader, expression, value):
    r = grader(_evaluate, expression)
    assert r.value == value and type(r.value) in (type(None), str, list, int)
    assert not sandbox.same(r.value, "the expected value")
    if value is None:
        assert r.status == "error" and "not a literal" in r.error


HUNT = f"""
import gc, os, sys
found = []
def look(read):
    try:
        found.append(repr(read()))
    except Exception:
        pass
look(lambda: open('DATA').read())
for p in os.listdir('/proc'):
    for n in ('environ', 'cmdline', 'mem'):
        look(lambda: open(f'/proc/{{p}}/{{n}}', 'rb').read(10**6))
look(lambda: os.pread(os.open('/proc/{GRADER_PID}/mem', os.O_RDONLY), 10**6, 0))
for fd in range(64):
    look(lambda: os.read(fd, 10**6) if fd not in (1, 2) else b'')
look(lambda: [o for o in gc.get_objects() if isinstance(o, str)])
look(lambda: [f.f_globals for f in [sys._getframe(i) for i in range(5)]])
found = ' '.join(found)
"""


def test_a_prediction_cannot_read_the_expected_value(grader, shared_tmp):
    token = f"expected-{uuid.uuid4().hex}"
    data = shared_tmp / f"data-{uuid.uuid4().hex}.jsonl"  # stands for the dataset file
    data.write_text(f'{{"output": "{token}"}}\n')
    data.chmod(0o644)
    item = f"def f():\n    return {token!r}"
    expected = grader(_evaluate, "f()", item)
    assert expected.value == token
    hunt = f"(lambda g: exec({HUNT.replace('DATA', str(data))!r}, g) or g['found'])({{}})"
    for audit in (True, False):
        r = grader(_evaluate, hunt, "", audit=audit)
        assert token not in repr(r), r
    b = get(benchmarks.knobs(name="cruxeval", data_dir=str(shared_tmp)))
    from harness.benchmarks.cruxeval import CruxItem

    crux = CruxItem(id="x", question="", reference=repr(token), code=item, input="")
    assert grader(b.score, crux, repr(token)) == 1.0
    assert grader(b.score, crux, hunt) == 0.0


def write_to_every_fd(line: str) -> str:
    return (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        f"        os.write(fd, b'garbage\\n' + {line!r}.encode() + b'\\n')\n"
        "    except OSError:\n        pass\n"
    )


def test_forged_report_lines_are_no_verdict(grader):
    writes = write_to_every_fd('{"how": "exited", "code": 0}')  # the supervisor's words
    r = grader(_evaluate, "0", writes)  # its real outcome comes last: the value 0
    assert (r.status, r.value) == ("ok", 0)
    r = grader(_evaluate, "0", writes + "os._exit(0)\n")
    assert r.status == "error" and "malformed verdict" in r.error
    fds = grader(_evaluate, "sorted(os.listdir('/proc/self/fd'))", "import os").value
    assert len(fds) == 5  # stdin, stdout, stderr, the report pipe, and listdir's own
    forged = write_to_every_fd('{"status": "ok", "value": "\'forged\'"}') + "os._exit(0)\n"
    r = grader(_evaluate, "0", forged)  # claims a value: it is only its own prediction
    assert r.value == "forged" and not sandbox.same(r.value, "the expected value")


@pytest.mark.parametrize(
    "expression, reason",
    [
        (
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",  # noqa: E501
            "deeper",
        ),
        ("'x' * 10**6", "longer than"),
        ("(lambda l: (l.append(l), l)[1])([])", "deeper"),  # a list holding itself
        ("print", "not a literal"),
    ],
)
def test_values_outside_the_grammar_are_errors(grader, expression, reason):
    r = grader(_evaluate, expression)
    assert r.status == "error" and reason in r.error and r.value is None


@pytest.mark.parametrize(
    "text",
    ["", "(", "__import__('os')", "f(1)", "[1] * 3", "{[1]: 2}", "float('1e5')", "x", "1 +"],
)
def test_literal_refuses_anything_but_a_literal(text):
    with pytest.raises(ValueError):
        sandbox.literal(text)


def test_literal_and_same():
    assert sandbox.literal("[1, -2.5, (3,), {'a': b'b'}, {1}, set(), frozenset({2}), 1+2j]") == [
        1,
        -2.5,
        (3,),
        {"a": b"b"},
        {1},
        set(),
        frozenset({2}),
        1 + 2j,
    ]
    nan = sandbox.literal("[float('nan'), float('-inf')]")
    assert sandbox.same(nan, sandbox.literal("[float('nan'), -float('inf')]"))
    assert sandbox.same(1, True) and sandbox.same([1], [1.0]) and not sandbox.same([1], (1,))
    assert not sandbox.same({"a": [1]}, {"a": (1,)})


# --------------------------------------------------------------- the trusted opt-out ----


def test_trusted_mode_keeps_the_limits_and_the_audit_hook():
    trusted = Limits(mode="trusted")
    r = sandbox.run("pass", trusted)
    assert r.status == "ok" and set(r.layers) == {"rlimits", "session", "audit"}
    assert sandbox.run("while True:\n    pass", trusted, timeout_s=1.0).status == "timeout"
    fork = sandbox.run("import os\nos.fork()", trusted)
    assert fork.status == "error" and "PermissionError" in fork.error
    kill = sandbox.run(f"import os\nos.kill({os.getpid()}, 9)", trusted)
    assert kill.status == "error" and "PermissionError" in kill.error
    value = sandbox.evaluate("f(1)", "def f(x):\n    return [x]", trusted)
    assert value.value == [1]
