"""The sandbox's child program: supervisor, init and runner (stdlib only; see harness.sandbox).

Run by the caller (harness.sandbox.caller) as `python -I -S child.py`, in an empty environment,
with the code, the limits and the pipes' numbers as JSON on stdin; never imported by the grader.
`-I -S` keeps it to the standard library: no site, no user paths, no PYTHON* variables. The one
other module it needs, literal.py (values -> literal text), sits beside it and is loaded by path
before the root is replaced.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import signal
import sys
import time

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

_BLOCKED_EVENTS = frozenset(
    """
    os.fork os.forkpty os.posix_spawn os.exec os.spawn os.system os.kill os.killpg os.setuid
    subprocess.Popen pty.spawn socket.__new__ socket.connect socket.bind socket.getaddrinfo
    socket.sendto ctypes.dlopen ctypes.dlsym ctypes.cdata ctypes.call_function gc.get_objects
    gc.get_referrers gc.get_referents sys.setprofile sys.settrace webbrowser.open
    """.split()
)
_PATH_EVENTS = frozenset(
    """
    os.remove os.rename os.rmdir os.mkdir os.chmod os.chown os.symlink os.link os.truncate
    os.utime shutil.rmtree shutil.copyfile shutil.move
    """.split()
)
_OTHER_PROC = re.compile(r"/proc/\d+(/|$)")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _sibling(name: str):
    """The module `name`.py beside this file (`-I` keeps this directory off sys.path)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"sandbox_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_literal = _sibling("literal")


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
            outcome["value"] = _literal.to_text(eval(expression, namespace), limits["value_kb"])
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


if __name__ == "__main__":
    _supervise(json.loads(sys.stdin.read()))
