"""Run untrusted Python (model-written code) in a contained child process.

Usage:
    from harness.sandbox import run
    result = run("assert sorted([3, 1]) == [1, 3]", timeout_s=3)
    result.status  # "ok", "error", "memory", "timeout", "cpu_limit" or "crash"

Model-written code never runs in the caller's process. Each `run` starts a fresh
`python -I -S` (isolated: no environment variables, user site or site-packages; an empty
environment, so no API keys) with stdin closed and stdout/stderr going to anonymous files, and
layers these defences (the kernel ones do not depend on the Python ones):

  rlimits       RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC,
                RLIMIT_CORE=0; always active
  wall clock    the caller waits at most `timeout_s`, then kills
  session       the child leads a new session/process group; the whole group is SIGKILLed
                after every run, also on success
  uid           (root only) the child drops to a fresh random uid/gid with no groups before
                running the code: it cannot signal or read the caller (/proc/<ppid>/environ),
                cannot write anywhere but world-writable places, RLIMIT_NPROC bounds its
                processes (root ignores RLIMIT_NPROC), and afterwards every process of that uid
                is killed (`kill -KILL -1` run as the uid, repeated until /proc shows none), so
                a fork bomb that left the process group does not survive either
  no_new_privs  prctl(PR_SET_NO_NEW_PRIVS): no setuid binaries; PR_SET_PDEATHSIG kills the child
                if the caller dies
  netns         a new, empty network namespace (only a down loopback): no network at all
  mountns       a private mount namespace with fresh 16 MiB tmpfs over /tmp, /var/tmp,
                /run/lock and /dev/shm: writes to world-writable places go to throwaway copies
  audit         a Python audit hook (sys.addaudithook) installed before the code runs, raising
                PermissionError on sockets, fork/exec/subprocess/os.system, os.kill, ctypes,
                file creation, writes, renames and removals outside the working directory, and
                reading other processes' /proc entries
The working directory is a fresh temporary directory, deleted afterwards.

The namespaces need root (or, for a non-root caller, unprivileged user namespaces: then
`netns` and `mountns` run inside a new user namespace, without `uid`). A layer that cannot be
set up is left out, listed in `Result.layers`' complement, and logged once as a warning.

The verdict travels on a private file descriptor as a line carrying a random nonce, so code
that exits early (`os._exit(0)`) or prints look-alike lines gets `crash`, not `ok`. Code that
deliberately digs the nonce out of the interpreter's memory could forge a pass; containment
(no writes outside, no network, no surviving processes, the limits) does not rely on the
verdict.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ALL_LAYERS = ("rlimits", "session", "uid", "no_new_privs", "netns", "mountns", "audit")
_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm")
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
_warned: set[str] = set()


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, including interpreter start (~50 ms, seconds under load)
    memory_mb: int = 512  # address space per process
    cpu_s: int = 4  # CPU seconds per process
    file_mb: int = 16  # largest file the code may write (stdout included)
    nproc: int = 8  # processes and threads of the sandbox uid (only with the `uid` layer)
    nofile: int = 64
    audit: bool = True  # the Python audit hook; tests turn it off to check the kernel layers
    privileges: bool = True  # uid drop and namespaces; tests turn them off to check `audit`


@dataclass(frozen=True)
class Result:
    status: str  # ok | error | memory | timeout | cpu_limit | crash
    error: str = ""  # the exception ("AssertionError", "ZeroDivisionError: ...") or reason
    elapsed_s: float = 0.0
    returncode: int | None = None
    stdout: str = ""  # the last 4 KiB
    stderr: str = ""
    layers: tuple[str, ...] = field(default_factory=tuple)
    uid: int | None = None  # the sandbox uid (`uid` layer); none of its processes outlive `run`

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def run(source: str, limits: Limits | None = None, **overrides) -> Result:
    """Execute `source` as a module in a fresh contained process; `ok` when it runs to the end.

    Keyword overrides set `Limits` fields (`run(src, timeout_s=1)`).
    """
    limits = limits or Limits()
    if overrides:
        limits = Limits(**{**limits.__dict__, **overrides})
    uid = _fresh_uid() if os.geteuid() == 0 and limits.privileges else None
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="sandbox-")
    files = [tempfile.TemporaryFile() for _ in range(3)]  # stdout, stderr, verdict
    out, err, verdict = files
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        config = {
            "source": source,
            "nonce": nonce,
            "uid": uid,
            "limits": limits.__dict__,
            "verdict_fd": verdict.fileno(),
        }
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=_ENV,
            start_new_session=True,
            pass_fds=(verdict.fileno(),),
        )
        timed_out = False
        try:
            proc.stdin.write(json.dumps(config).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            returncode = _wait_then_kill_group(proc, limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out, returncode = True, None
        elapsed = time.monotonic() - start
        if uid is not None:
            _kill_uid(uid)
        result = _verdict(verdict, nonce, returncode, timed_out, elapsed, out, err, uid)
    finally:
        for f in files:
            f.close()
        shutil.rmtree(workdir, ignore_errors=True)
    _warn_missing(result.layers, limits)
    return result


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


def _fresh_uid() -> int:
    while True:  # far above any real account; unused by any live process
        uid = random.randrange(1_500_000_000, 2_000_000_000)
        if not processes_of(uid):
            return uid


def _wait_then_kill_group(proc: subprocess.Popen, timeout_s: float) -> int:
    """Wait for the child without reaping it, SIGKILL its process group, then reap it.

    Killing before reaping keeps the group id from being reused by an unrelated process.
    """
    pidfd = os.pidfd_open(proc.pid)
    try:
        import select

        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    returncode = proc.wait()
    if not ready:
        raise subprocess.TimeoutExpired(proc.args, timeout_s)
    return returncode


def _kill_uid(uid: int, deadline_s: float = 10.0) -> None:
    """SIGKILL every process of `uid` (kill -1 sent as that uid), until /proc shows none."""
    end = time.monotonic() + deadline_s
    while processes_of(uid):
        if time.monotonic() > end:
            raise RuntimeError(f"sandbox: processes of uid {uid} survive SIGKILL")
        subprocess.run(
            ["kill", "-KILL", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_ENV,
        )
        time.sleep(0.005)


def _tail(f, size: int = 4096) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - size))
    return f.read().decode("utf-8", "replace")


def _verdict(verdict, nonce, returncode, timed_out, elapsed, out, err, uid) -> Result:
    found = None
    for line in _tail(verdict, 65536).splitlines():
        if line.startswith(nonce + " "):
            found = json.loads(line[len(nonce) + 1 :])
    common = {
        "elapsed_s": elapsed,
        "returncode": returncode,
        "stdout": _tail(out),
        "stderr": _tail(err),
        "layers": tuple(found["layers"]) if found else (),
        "uid": uid,
    }
    if timed_out:
        return Result("timeout", f"killed after {elapsed:.2f}s wall clock", **common)
    if found and found["status"] != "started":
        return Result(found["status"], found.get("error", ""), **common)
    if returncode == -signal.SIGXCPU:
        return Result("cpu_limit", "CPU time limit exceeded", **common)
    reason = f"exited with {returncode} without a verdict"
    if found is None:
        reason += " (sandbox setup failed)"
    return Result("crash", reason, **common)


def _warn_missing(layers: tuple[str, ...], limits: Limits) -> None:
    if not layers:
        return
    wanted = [layer for layer in ALL_LAYERS if layer != "audit" or limits.audit]
    if not limits.privileges:
        wanted = [layer for layer in wanted if layer not in ("uid", "netns", "mountns")]
    for layer in wanted:
        if layer not in layers and layer not in _warned:
            _warned.add(layer)
            log.warning("sandbox: layer %r is not active on this machine", layer)


# ---------------------------------------------------------------- the child (stdlib only) ----

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38

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
            return path in (1, 2)  # stdout, stderr; not the verdict descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == workdir or real.startswith(workdir + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
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


def _libc_call(libc, name: str, *args) -> None:
    if getattr(libc, name)(*args) != 0:
        import ctypes

        raise OSError(ctypes.get_errno(), f"{name}: {os.strerror(ctypes.get_errno())}")


def _contain(config: dict) -> list[str]:
    """Set up every layer that can be set up (as root, before dropping privileges)."""
    import ctypes
    import resource

    limits, uid, layers = config["limits"], config["uid"], []
    libc = ctypes.CDLL(None, use_errno=True)
    if limits["privileges"]:
        flags = _CLONE_NEWNET | _CLONE_NEWNS | (0 if os.geteuid() == 0 else _CLONE_NEWUSER)
        try:
            _libc_call(libc, "unshare", flags)
            layers.append("netns")
            _libc_call(libc, "mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None)
            for d in _WRITABLE_DIRS:
                if os.path.isdir(d):
                    opts = b"size=16m,mode=1777"
                    flags = _MS_NOSUID | _MS_NODEV
                    _libc_call(libc, "mount", b"tmpfs", d.encode(), b"tmpfs", flags, opts)
            if uid is not None:  # the new uid may not traverse to the stdlib (e.g. /root/.pyenv)
                for i, path in enumerate(sys.path):
                    if os.path.isdir(path):
                        target = f"/tmp/.python-{i}"
                        os.mkdir(target, 0o755)
                        _libc_call(
                            libc, "mount", path.encode(), target.encode(), None, _MS_BIND, None
                        )
                        sys.path[i] = target
                        for module in list(sys.modules.values()):  # e.g. encodings.__path__
                            paths = getattr(module, "__path__", None)
                            if isinstance(paths, list):
                                paths[:] = [
                                    target + q[len(path) :] if q.startswith(path) else q
                                    for q in paths
                                ]
            layers.append("mountns")
        except OSError as e:
            print(f"sandbox: namespaces unavailable: {e}", file=sys.stderr)
    mb = 1024 * 1024
    for name, value in (
        ("RLIMIT_AS", limits["memory_mb"] * mb),
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_FSIZE", limits["file_mb"] * mb),
        ("RLIMIT_NOFILE", limits["nofile"]),
        ("RLIMIT_NPROC", limits["nproc"]),
        ("RLIMIT_CORE", 0),
    ):
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, SIGKILL a second on
        resource.setrlimit(getattr(resource, name), (value, hard))
    layers += ["rlimits", "session"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        layers.append("uid")
    try:
        _libc_call(libc, "prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _libc_call(libc, "prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        layers.append("no_new_privs")
    except OSError as e:
        print(f"sandbox: prctl failed: {e}", file=sys.stderr)
    return layers


def _child() -> None:
    config = json.loads(sys.stdin.read())
    nonce, fd = config.pop("nonce"), config["verdict_fd"]
    write, dumps = os.write, json.dumps  # kept before the code can patch the modules
    workdir = os.path.realpath(os.getcwd())
    layers = _contain(config)
    if config["limits"]["audit"]:
        sys.addaudithook(_audit_hook(workdir))
        layers.append("audit")
    source = config.pop("source")
    config = None
    outcome = {"status": "started", "layers": layers}
    write(fd, (nonce + " " + dumps(outcome) + "\n").encode())  # setup done, code starts
    try:
        exec(compile(source, "<sandboxed>", "exec"), {"__name__": "__sandboxed__"})
        outcome["status"] = "ok"
    except MemoryError:
        outcome.update(status="memory", error="MemoryError")
    except BaseException as e:  # SystemExit and KeyboardInterrupt count as failures too
        outcome.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # a replaced or closed stream must not cost the verdict
            pass
    write(fd, (nonce + " " + dumps(outcome) + "\n").encode())
    os._exit(0)


if __name__ == "__main__":
    _child()
