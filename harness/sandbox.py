"""Run untrusted Python (model-written code) in a contained child process.

Usage:
    from harness import sandbox
    sandbox.check()          # at startup, before any model loads: ConfigError if it cannot contain
    r = sandbox.run("assert sorted([3, 1]) == [1, 3]", timeout_s=3)
    r.status                 # ok | error | memory | timeout | cpu_limit | crash
    v = sandbox.evaluate("f(2)", setup="def f(x):\n    return [x] * 2")
    v.value                  # [2, 2], a plain value parsed here (None unless v.status == "ok")

Verdicts. Nothing the code in the sandbox writes decides a verdict. `evaluate` sends back the
value of an expression as text in a small literal grammar (None, bool, int, float with nan and
inf, complex, str, bytes, tuple, list, dict, set, frozenset; a subclass is reduced to its base
type through the base type's own methods; any other object is an `error`). The caller parses
that text with `literal` (a walk over `ast` nodes: no code runs, only built-in values come out)
and compares with `same` (== on built-in values, nan equal to nan), so an object whose `__eq__`
lies never reaches the comparison. A message that does not parse, or is too long, is an
`error` outcome naming the reason, never an exception. `run`'s `ok` only means the code
reported reaching its end: code can forge that, so no score may rest on it.

Containment (mode "contained", the default) holds for root and for a normal user alike:
  userns   a normal user's child runs in a new user namespace (unprivileged user namespaces),
           mapped to the user's own uid; root's child drops to a fresh random uid, no groups
  pidns    a new pid namespace: the child cannot see, signal, ptrace, prlimit or read /proc of
           the grader or any process outside it, and when the run ends the kernel kills every
           process left in it (daemons and fork bombs included)
  mountns  pivot_root into a fresh root holding read-only binds of /usr, /bin, /lib* and the
           Python installation, its own /proc, /dev/{null,zero,full,random,urandom}, and /tmp:
           a tmpfs of `disk_mb` MiB and `files` inodes, the working directory. The grader's
           files, home, data and /tmp are not in it at all
  netns    a new network namespace (only a down loopback), new ipc and uts namespaces
  caps     every capability dropped (bounding set too), no_new_privs, a non-dumpable init
  rlimits  address space, CPU seconds, file size, open files, processes, no core files
  clock    the supervisor kills the namespace's init after `timeout_s`; the caller kills the
           whole process group a few seconds later if even that did not end the run
  audit    a Python audit hook refusing fork/exec, signals, sockets, ctypes, writes outside
           the working directory and other processes' /proc entries (defence in depth)
`check()` tries all of it once per process and raises harness.errors.ConfigError naming what
the kernel refused (e.g. unprivileged user namespaces). Opt-out, for code you trust only: mode
"trusted" (`benchmark.sandbox=trusted`) keeps rlimits, clock, session and the audit hook,
drops every namespace, and logs a warning once.

Processes (contained): caller -> supervisor (`python -I -S sandbox.py`, empty environment,
unshares) -> init (pid 1: mounts, pivot_root, drops capabilities, reaps) -> runner (pid 2:
limits, uid, runs the code). The code and limits arrive on stdin; the runner reports on a pipe
(a first line once set up, a last line with the outcome); only the supervisor holds the status
pipe that says how the runner ended; stdout and stderr go to anonymous files (last 4 KiB kept).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import select
import signal
import sys
import time

# ---------------------------------------------------------------- the child (stdlib only) ----

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 4096, 16384, 1 << 18, 2
_ST_KEPT = 2 | 4 | 8 | 1024 | 2048  # statvfs nosuid, nodev, noexec, noatime, nodiratime
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 1, 4, 24
_PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = ("null", "zero", "full", "random", "urandom")
_NEW_ROOT = "/tmp"  # a mount point for the new root's tmpfs (in the private mount namespace)

_BLOCKED_EVENTS = {
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.exec",
    "os.spawn",
    "os.system",
    "os.kill",
    "os.killpg",
    "os.setuid",
    "subprocess.Popen",
    "pty.spawn",
    "socket.__new__",
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.sendto",
    "ctypes.dlopen",
    "ctypes.dlsym",
    "ctypes.cdata",
    "ctypes.call_function",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "sys.setprofile",
    "sys.settrace",
    "webbrowser.open",
}
_PATH_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
_OTHER_PROC = re.compile(r"/proc/\d+(/|$)")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit_hook(workdir: str):
    def inside(path) -> bool:
        if isinstance(path, int):
            return path in (1, 2)  # stdout, stderr; not the report pipe
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == workdir or real.startswith(workdir + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "resource.prlimit" and args[0] not in (0, os.getpid()):
            raise PermissionError("sandbox: prlimit on another process is not allowed")
        if event == "open":
            path, mode, flags = args
            if isinstance(path, str | bytes) and _OTHER_PROC.match(os.fsdecode(path)):
                if not os.fsdecode(path).startswith(f"/proc/{os.getpid()}/"):
                    raise PermissionError(f"sandbox: reading {path!r} is not allowed")
            writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
        elif event in _PATH_EVENTS:
            paths = [a for a in args[:2] if isinstance(a, str | bytes | os.PathLike)]
            if not all(inside(p) for p in paths):
                raise PermissionError(f"sandbox: {event} outside the working directory")

    return hook


class _Libc:
    """The few libc calls the child needs, raising OSError naming the call."""

    def __init__(self):
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)

    def __call__(self, name: str, *args) -> None:
        call = getattr(self.libc, name, None)
        if call is None and name == "pivot_root":  # glibc < 2.34 has no wrapper
            import platform

            number = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
            if number is None:
                raise OSError(f"pivot_root: no wrapper or syscall number on {platform.machine()}")
            call = functools.partial(self.libc.syscall, number)
        if call(*args) != 0:
            errno = self.ctypes.get_errno()
            shown = ", ".join(a.decode() if isinstance(a, bytes) else str(a) for a in args)
            raise OSError(errno, f"{name}({shown}): {os.strerror(errno)}")

    def mount(self, source, target, fstype, flags, data=None) -> None:
        enc = [x.encode() if isinstance(x, str) else x for x in (source, target, fstype, data)]
        self("mount", enc[0], enc[1], enc[2], flags, enc[3])

    def drop_capabilities(self) -> None:
        ctypes = self.ctypes
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for cap in range(last + 1):
            self("prctl", _PR_CAPBSET_DROP, cap, 0, 0, 0)
        self("prctl", _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (x2): all empty
        self("capset", ctypes.byref(Header(0x20080522, 0)), data)


def _write(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _enter_namespaces(libc: _Libc, rootless: bool) -> None:
    """Supervisor: new user (rootless only), mount, pid, net, ipc and uts namespaces."""
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    uid, gid = os.geteuid(), os.getegid()
    libc("unshare", flags | (_CLONE_NEWUSER if rootless else 0))
    if rootless:  # the user's own uid and gid inside too; it has no other ids to map
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")


def _build_root(libc: _Libc, limits: dict, owner: int) -> None:
    """Init: pivot_root into a fresh read-only root; /tmp (the working dir) a capped tmpfs."""
    libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    root = _NEW_ROOT
    libc.mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    binds = list(_SYSTEM_DIRS)
    for path in [sys.base_prefix, sys.prefix, *sys.path]:
        if path and os.path.isdir(path) and not any(_under(path, b) for b in binds):
            binds.append(os.path.realpath(path))
    for path in binds:
        target = root + path
        if os.path.islink(path) and path in _SYSTEM_DIRS:  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path) and not os.path.lexists(target):
            os.makedirs(target, 0o755)
            libc.mount(path, target, None, _MS_BIND | _MS_REC)
            kept = os.statvfs(target).f_flag & _ST_KEPT
            libc.mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | kept)
    os.mkdir(root + "/dev", 0o755)
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{root}/dev/{name}", "w").close()
            libc.mount(f"/dev/{name}", f"{root}/dev/{name}", None, _MS_BIND)
    os.mkdir(root + "/proc", 0o555)  # mounted before pivot_root: the kernel wants /proc visible
    libc.mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.mkdir(root + "/tmp", 0o755)
    opts = (
        f"size={limits['disk_mb']}m,nr_inodes={limits['files']},mode=0700,uid={owner},gid={owner}"
    )
    libc.mount("tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, opts)
    os.chdir(root)
    libc("pivot_root", b".", b".")
    libc("umount2", b".", _MNT_DETACH)  # the old root, stacked on top by pivot_root(".", ".")
    os.chdir("/")
    libc.mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir("/tmp")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _wait(pid: int, deadline: float) -> int | None:
    """The wait status of child `pid`, or None when `deadline` passed first (pid not reaped)."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                return os.waitpid(pid, 0)[1]
            if time.monotonic() >= deadline:
                return None
    finally:
        os.close(pidfd)


def _ended(status: int) -> dict:
    if os.WIFSIGNALED(status):
        return {"how": "signaled", "code": -os.WTERMSIG(status)}
    return {"how": "exited", "code": os.WEXITSTATUS(status)}


def _supervise(config: dict) -> None:
    """Supervisor: enter the namespaces, start init (or, trusted, the runner), wait, report."""
    limits, status_fd, report_fd = config["limits"], config["status_fd"], config["report_fd"]
    deadline = config["deadline"]
    contained = limits["mode"] == "contained"
    libc = _Libc()
    if contained:
        try:
            _enter_namespaces(libc, rootless=config["uid"] is None)
        except OSError as e:
            _write(status_fd, {"how": "setup", "error": str(e)})
            os._exit(3)
    ended_r, ended_w = os.pipe()  # init -> supervisor: the runner's wait status
    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        os.close(ended_r)
        if contained:
            _init(config, libc, ended_w)
        else:
            os.close(ended_w)
            _runner(config, libc, [])
    os.close(ended_w)
    status = _wait(pid, deadline)
    if status is None:
        os.kill(pid, signal.SIGKILL)  # init: the kernel then kills the whole pid namespace
        os.waitpid(pid, 0)
        if not contained:
            _kill_group(pid)
        _write(status_fd, {"how": "timeout"})
        os._exit(0)
    if contained:
        os.set_blocking(ended_r, False)
        try:
            message = json.loads(os.read(ended_r, 4096) or b"{}")
        except (BlockingIOError, ValueError):
            message = {}
        if not message:
            message = {"how": "setup", "error": f"init ended with status {status}"}
    else:
        _kill_group(pid)
        message = _ended(status)
    os.close(report_fd)
    _write(status_fd, message)
    os._exit(0)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _init(config: dict, libc: _Libc, ended_w: int) -> None:
    """Pid 1 of the new namespace: build the root, start the runner, reap, pass its status on."""
    report_fd = config["report_fd"]
    try:
        libc("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        libc("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)  # the runner may not ptrace or read us
        uid = config["uid"] if config["uid"] is not None else os.geteuid()
        _build_root(libc, config["limits"], uid)
        if config["uid"] is None:  # rootless: nothing more to drop than the namespace's caps
            libc.drop_capabilities()
    except OSError as e:
        _write(report_fd, {"setup": f"{e}"})
        os._exit(3)
    runner = os.fork()
    if runner == 0:
        os.close(ended_w)
        _runner(config, libc, ["user", "pidns", "mountns", "netns"])
    while True:
        pid, status = os.wait()
        if pid == runner:
            break
    os.write(ended_w, json.dumps(_ended(status)).encode())
    os._exit(0)  # the kernel now kills whatever the runner left in the namespace


def _runner(config: dict, libc: _Libc, layers: list[str]) -> None:
    """Limits, uid, audit hook; then the code, and its outcome on the report pipe."""
    import resource

    limits, fd = config["limits"], config["report_fd"]
    write, dumps = os.write, json.dumps  # kept before the code can patch the modules
    try:
        os.setsid()  # the code's killpg(0) reaches its own processes only
        mb = 1024 * 1024
        for name, value in (
            ("RLIMIT_AS", limits["memory_mb"] * mb),
            ("RLIMIT_CPU", limits["cpu_s"]),
            ("RLIMIT_FSIZE", limits["file_mb"] * mb),
            ("RLIMIT_NOFILE", limits["nofile"]),
            ("RLIMIT_NPROC", limits["nproc"]),
            ("RLIMIT_CORE", 0),
        ):
            hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU, then SIGKILL
            resource.setrlimit(getattr(resource, name), (value, hard))
        layers += ["rlimits", "session"]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, not kills
        if config["uid"] is not None:  # root: a fresh uid, and with it no capabilities
            uid = config["uid"]
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        if "user" in layers:
            with open("/proc/self/status") as f:
                caps = [ln for ln in f if ln.startswith(("CapInh", "CapPrm", "CapEff", "CapAmb"))]
            if len(caps) < 3 or any(int(ln.split()[1], 16) for ln in caps):
                raise OSError(f"capabilities left: {''.join(caps)!r}")
            layers.append("caps")
        libc("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError as e:
        _write(fd, {"setup": f"{e}"})
        os._exit(3)
    if limits["audit"]:
        sys.addaudithook(_audit_hook(os.path.realpath(os.getcwd())))
        layers.append("audit")
    source, expression = config.pop("source"), config.pop("expression")
    config = None
    write(fd, (dumps({"setup": "ok", "layers": layers}) + "\n").encode())
    outcome = {"status": "ok"}
    try:
        namespace = {"__name__": "__sandboxed__"}
        exec(compile(source, "<sandboxed>", "exec"), namespace)
        if expression is not None:
            outcome["value"] = _literal_text(eval(expression, namespace), limits["value_kb"])
    except MemoryError:
        outcome = {"status": "memory", "error": "MemoryError"}
    except BaseException as e:  # SystemExit and KeyboardInterrupt count as failures too
        try:
            outcome = {"status": "error", "error": f"{type(e).__name__}: {e}"[:500]}
        except BaseException:  # an exception whose str() raises
            outcome = {"status": "error", "error": type(e).__name__}
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # a replaced or closed stream must not cost the outcome
            pass
    try:
        write(fd, (dumps(outcome) + "\n").encode())
    except BaseException:
        os._exit(4)
    os._exit(0)


class _TooLong(ValueError):
    pass


def _float_text(x: float) -> str:
    return float.__repr__(x) if math.isfinite(x) else f"float('{x!r}')"


def _literal_text(value, budget_kb: int) -> str:
    """`value` in the literal grammar `literal` parses; ValueError for anything else."""
    parts: list[str] = []
    budget = [budget_kb * 1024]

    def emit(text: str) -> None:
        budget[0] -= len(text)
        if budget[0] < 0:
            raise _TooLong(f"the value is longer than {budget_kb} KiB")
        parts.append(text)

    def walk(v, depth: int) -> None:
        if depth > 100:
            raise ValueError("the value is nested deeper than 100 levels")
        if v is None or v is ...:
            emit(repr(v))
        elif isinstance(v, bool):
            emit("True" if v else "False")
        elif isinstance(v, int):
            n = int.__index__(v)
            emit(int.__repr__(n) if n.bit_length() < 10000 else hex(n))
        elif isinstance(v, float):
            emit(_float_text(float.__float__(v)))
        elif isinstance(v, complex):
            z = complex.__complex__(v)
            emit(f"complex({_float_text(z.real)}, {_float_text(z.imag)})")
        elif isinstance(v, str):
            emit(str.__repr__(str.__str__(v)))
        elif isinstance(v, bytes | bytearray):
            emit(bytes.__repr__(bytes(v)))
        elif isinstance(v, tuple | list):
            items = tuple.__iter__(v) if isinstance(v, tuple) else list.__iter__(v)
            emit("(" if isinstance(v, tuple) else "[")
            n = 0
            for n, item in enumerate(items, 1):
                if n > 1:
                    emit(", ")
                walk(item, depth + 1)
            emit(",)" if isinstance(v, tuple) and n == 1 else ")" if isinstance(v, tuple) else "]")
        elif isinstance(v, dict):
            emit("{")
            for n, (key, item) in enumerate(dict.items(v)):
                if n:
                    emit(", ")
                walk(key, depth + 1)
                emit(": ")
                walk(item, depth + 1)
            emit("}")
        elif isinstance(v, set | frozenset):
            members = list(set.__iter__(v) if isinstance(v, set) else frozenset.__iter__(v))
            emit("frozenset(" if isinstance(v, frozenset) else "")
            if members:
                emit("{")
                for n, item in enumerate(members):
                    if n:
                        emit(", ")
                    walk(item, depth + 1)
                emit("}")
            elif isinstance(v, set):
                emit("set()")
            emit(")" if isinstance(v, frozenset) else "")
        else:
            raise ValueError(f"a {type(v).__name__} is not a literal value")

    walk(value, 0)
    return "".join(parts)


if __name__ == "__main__":  # the child: started before the caller's imports below (start-up time)
    _supervise(json.loads(sys.stdin.read()))

# The caller's imports: the child never needs them, and they would double its start-up time.
import ast  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from typing import Any  # noqa: E402

log = logging.getLogger(__name__)


MODES = ("contained", "trusted")
CONTAINED_LAYERS = ("user", "pidns", "mountns", "netns", "caps", "rlimits", "session", "audit")
TRUSTED_LAYERS = ("rlimits", "session", "audit")
PYTHON = sys.executable  # the interpreter of the sandboxed process (stdlib only is needed)
CHILD = os.path.abspath(__file__)
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
_GRACE_S = 5.0  # after the supervisor's own deadline, the caller kills the process group
_checked: dict[tuple, str] = {}  # (mode, euid, interpreter) -> "" (works) or the reason it does not
_warned: set[str] = set()


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, including interpreter start (~50 ms, seconds under load)
    memory_mb: int = 512  # address space per process
    cpu_s: int = 4  # CPU seconds per process
    file_mb: int = 16  # largest file the code may write (stdout included)
    disk_mb: int = 32  # contained: the whole tmpfs working directory
    files: int = 1024  # contained: files and directories in the working directory
    nproc: int = 8  # processes and threads
    nofile: int = 64
    value_kb: int = 64  # longest value text `evaluate` accepts
    audit: bool = True  # the Python audit hook; tests turn it off to check the kernel layers
    mode: str = "contained"  # or "trusted": no namespaces (see the module docstring)


@dataclass(frozen=True)
class Result:
    status: str  # ok | error | memory | timeout | cpu_limit | crash
    error: str = ""  # the exception ("AssertionError", "ZeroDivisionError: ...") or reason
    elapsed_s: float = 0.0
    returncode: int | None = None  # the runner's exit status; -N when a signal N ended it
    stdout: str = ""  # the last 4 KiB
    stderr: str = ""
    layers: tuple[str, ...] = field(default_factory=tuple)
    uid: int | None = None  # root only: the fresh uid the code ran as
    value: Any = None  # evaluate(): the value, parsed by the caller, when status == "ok"

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def run(source: str, limits: Limits | None = None, **overrides) -> Result:
    """Execute `source` as a module in a fresh contained process; `ok` when it runs to the end.

    Keyword overrides set `Limits` fields (`run(src, timeout_s=1)`).
    """
    return _launch(source, None, _limits(limits, overrides))


def evaluate(expression: str, setup: str = "", limits: Limits | None = None, **overrides) -> Result:
    """The value of `expression`, evaluated in the sandbox in the namespace `setup` leaves.

    `Result.value` is the value parsed by `literal` in this process; a value outside the literal
    grammar, or a message that does not parse, is an `error` outcome.
    """
    return _launch(setup, expression, _limits(limits, overrides))


def check(mode: str = "contained") -> None:
    """Raise ConfigError unless this machine can run code in `mode` (tried once per process)."""
    from harness.errors import ConfigError

    if mode not in MODES:
        raise ConfigError(f"benchmark.sandbox={mode!r}; allowed: {', '.join(MODES)}")
    if mode == "trusted":
        if "trusted" not in _warned:
            _warned.add("trusted")
            log.warning(
                "sandbox: benchmark.sandbox=trusted: model-written code runs WITHOUT "
                "namespaces (no pid, mount or network isolation); only for code you trust"
            )
        return
    key = (mode, os.geteuid(), PYTHON)
    if key not in _checked:
        probe = _launch("pass", None, Limits(timeout_s=60, mode=mode), probe=True)
        reason = ""
        if probe.status != "ok" or set(probe.layers) != set(CONTAINED_LAYERS):
            reason = probe.error or f"probe ended {probe.status}; stderr: {probe.stderr[-500:]}"
        _checked[key] = reason
    if _checked[key]:
        raise ConfigError(_explain(_checked[key]))


def literal(text: str) -> Any:
    """The built-in value `text` spells in the literal grammar; ValueError if it is not one.

    Like ast.literal_eval (no code runs), plus `set()`, `frozenset(...)`, `float('nan')` and
    `complex(re, im)`.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _convert(tree.body)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a literal: {type(e).__name__}: {str(e)[:200]}") from None


def same(a: Any, b: Any) -> bool:
    """Equality of two values made by `literal`: ==, except that nan equals nan."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def processes_of(uid: int) -> list[int]:
    """Pids of the live processes owned by `uid` (zombies excluded)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            pids.append(int(name))
    return pids


# ------------------------------------------------------------------------------ the caller ----


def _limits(limits: Limits | None, overrides: dict) -> Limits:
    limits = limits or Limits()
    return replace(limits, **overrides) if overrides else limits


_CALLS = {"set": 0, "frozenset": 1, "float": 1, "complex": 2}


def _convert(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _convert(node.operand)
        if isinstance(value, int | float | complex) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        left, right = _convert(node.left), _convert(node.right)  # 1+2j, as literal_eval does
        if (
            type(left) in (int, float)
            and type(right) is complex
            and not isinstance(node.left, ast.BinOp)
        ):
            return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, ast.Tuple):
        return tuple(map(_convert, node.elts))
    if isinstance(node, ast.List):
        return list(map(_convert, node.elts))
    if isinstance(node, ast.Set):
        return set(map(_convert, node.elts))
    if isinstance(node, ast.Dict) and None not in node.keys:
        return dict(zip(map(_convert, node.keys), map(_convert, node.values), strict=True))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CALLS
        and not node.keywords
        and len(node.args) <= _CALLS[node.func.id]
    ):
        args = [_convert(a) for a in node.args]
        name = node.func.id
        if name == "set" and not args:
            return set()
        if name == "frozenset" and (not args or isinstance(args[0], set | list | tuple)):
            return frozenset(*args)
        if name == "float" and len(args) == 1 and isinstance(args[0], str):
            if args[0].strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
                return float(args[0])
        if name == "complex" and len(args) == 2 and all(type(a) in (int, float) for a in args):
            return complex(*args)
    raise ValueError(f"{type(node).__name__} is not allowed in a literal")


def _launch(source: str, expression: str | None, limits: Limits, probe: bool = False) -> Result:
    if limits.mode not in MODES:
        raise ValueError(f"sandbox mode {limits.mode!r}; allowed: {', '.join(MODES)}")
    if not probe:
        check(limits.mode)
    contained = limits.mode == "contained"
    uid = _fresh_uid() if contained and os.geteuid() == 0 else None
    workdir = None if contained else tempfile.mkdtemp(prefix="sandbox-")
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    report_r, report_w = os.pipe()  # the runner's messages (untrusted)
    status_r, status_w = os.pipe()  # how the runner ended (the supervisor's alone)
    try:
        config = {
            "source": source,
            "expression": expression,
            "limits": limits.__dict__,
            "uid": uid,
            "report_fd": report_w,
            "status_fd": status_w,
        }
        start = time.monotonic()
        config["deadline"] = start + limits.timeout_s  # CLOCK_MONOTONIC: one clock for both
        proc = subprocess.Popen(
            [PYTHON, "-I", "-S", CHILD],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            cwd=workdir or "/",
            env=_ENV,
            start_new_session=True,
            pass_fds=(report_w, status_w),
        )
        os.close(report_w)
        os.close(status_w)
        report_w = status_w = -1
        try:
            proc.stdin.write(json.dumps(config).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        cap = limits.value_kb * 1024 + 65536
        report, status, killed = _collect(proc, report_r, status_r, limits.timeout_s, cap)
        elapsed = time.monotonic() - start
        result = _result(report, status, killed, elapsed, _tail(out), _tail(err), uid)
    finally:
        for fd in (report_r, status_r, report_w, status_w):
            if fd >= 0:
                os.close(fd)
        out.close()
        err.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if expression is not None and result.status == "ok":
        result = _parse_value(result, limits)
    return result


def _fresh_uid() -> int:
    while True:  # far above any real account; unused by any live process
        uid = random.randrange(1_500_000_000, 2_000_000_000)
        if not processes_of(uid):
            return uid


def _collect(proc, report_fd: int, status_fd: int, timeout_s: float, cap: int):
    """Read both pipes until the supervisor exits: ((head, tail), status, killed).

    The report keeps its first and (when longer) its last `cap` bytes; the rest is dropped.
    """
    head, tail, status = bytearray(), bytearray(), bytearray()
    pidfd = os.pidfd_open(proc.pid)
    open_fds = {report_fd, status_fd}
    for fd in open_fds:
        os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout_s + _GRACE_S
    killed = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = True
                break
            ready, _, _ = select.select([pidfd, *open_fds], [], [], left)
            for fd in set(ready) & open_fds:
                chunk = _read(fd)
                if chunk == b"":
                    open_fds.discard(fd)
                elif fd == status_fd:
                    status += chunk[: 65536 - len(status)]
                else:
                    _keep(head, tail, chunk, cap)
            if pidfd in ready:
                break
    finally:
        os.close(pidfd)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for fd in open_fds:  # what the pipes still hold
        while chunk := _read(fd):
            if fd == status_fd:
                status += chunk[: 65536 - len(status)]
            else:
                _keep(head, tail, chunk, cap)
    return (bytes(head), bytes(tail)), bytes(status), killed


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None


def _keep(head: bytearray, tail: bytearray, chunk: bytes, cap: int) -> None:
    if len(head) < cap:
        take = chunk[: cap - len(head)]
        head += take
        chunk = chunk[len(take) :]
    if chunk:
        tail += chunk
        del tail[: max(0, len(tail) - cap)]


def _tail(f, size: int = 4096) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - size))
    return f.read().decode("utf-8", "replace")


def _message(line: bytes) -> dict | None:
    try:
        found = json.loads(line)
    except (ValueError, RecursionError, MemoryError):
        return None
    return found if isinstance(found, dict) else None


def _result(report, status, killed, elapsed, stdout, stderr, uid) -> Result:
    """The outcome: how the runner ended (the supervisor's word), then what it reported."""
    head, tail = report
    first = _message(head.split(b"\n", 1)[0]) or {}
    lines = (tail or head).rstrip(b"\n").split(b"\n")
    last = lines[-1] if tail or len(lines) > 1 else None  # a line after the setup line
    ended = _message(status) or {}
    layers = first.get("layers") if isinstance(first.get("layers"), list) else []
    code = ended.get("code")
    common = {
        "elapsed_s": elapsed,
        "returncode": code if isinstance(code, int) else None,
        "stdout": stdout,
        "stderr": stderr,
        "layers": tuple(str(x) for x in layers),
        "uid": uid,
    }
    how = ended.get("how")
    if killed or how == "timeout":
        return Result("timeout", f"killed after {elapsed:.2f}s wall clock", **common)
    if how == "setup" or first.get("setup", "ok") != "ok":
        told = first.get("setup") if first.get("setup") != "ok" else None  # init's own words
        reason = str(told or ended.get("error"))[:1000]
        return Result("crash", f"sandbox setup failed: {reason}", **common)
    if how == "signaled" and code == -signal.SIGXCPU:
        return Result("cpu_limit", "CPU time limit exceeded", **common)
    if how == "signaled":
        return Result("crash", f"killed by signal {-code}", **common)
    if how != "exited":
        return Result("crash", "the supervisor ended without a status", **common)
    if last is None:
        return Result("crash", f"exited with {code} without an outcome", **common)
    outcome = _message(last)
    if outcome is None or outcome.get("status") not in ("ok", "error", "memory"):
        return Result("error", "malformed verdict: the last report line is no outcome", **common)
    return Result(
        outcome["status"],
        str(outcome.get("error", ""))[:1000],
        **common,
        value=outcome.get("value"),
    )


def _parse_value(result: Result, limits: Limits) -> Result:
    text = result.value
    if not isinstance(text, str):
        return replace(result, status="error", error="malformed verdict: no value", value=None)
    if len(text) > limits.value_kb * 1024:
        return replace(result, status="error", error="malformed verdict: value too long")
    try:
        return replace(result, value=literal(text))
    except ValueError as e:
        return replace(result, status="error", error=f"malformed verdict: {e}", value=None)


def _explain(reason: str) -> str:
    hints = []
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    hints.append(f"{path[len('/proc/sys/') :].replace('/', '.')} is {bad}")
        except OSError:
            pass
    missing = "unprivileged user namespaces" if os.geteuid() else "mount/pid/network namespaces"
    return (
        f"sandbox: cannot contain model-written code on this machine: {reason}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f". CRUXEval grading needs {missing} (unshare(2)); ask an administrator to allow "
        "them (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, or on "
        "Ubuntu kernel.apparmor_restrict_unprivileged_userns=0), or grade as root. Only for "
        "code you trust: benchmark.sandbox=trusted grades without namespaces."
    )
