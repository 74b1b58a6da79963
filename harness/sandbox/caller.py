"""The sandbox's caller: start the child program, feed it the code, read how it ended.

Public names (re-exported by harness.sandbox): run, evaluate, check, Limits, Result, MODES,
CONTAINED_LAYERS, TRUSTED_LAYERS, processes_of; PYTHON and CHILD (the interpreter and the child
program it runs with `-I -S`; tests point them elsewhere to grade as an unprivileged user).
"""

from __future__ import annotations

import json
import logging
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ConfigError
from harness.sandbox.literal import literal

log = logging.getLogger(__name__)


MODES = ("contained", "trusted")
CONTAINED_LAYERS = ("user", "pidns", "mountns", "netns", "caps", "rlimits", "session", "audit")
TRUSTED_LAYERS = ("rlimits", "session", "audit")
PYTHON = sys.executable  # the interpreter of the sandboxed process (stdlib only is needed)
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
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


def _limits(limits: Limits | None, overrides: dict) -> Limits:
    limits = limits or Limits()
    return replace(limits, **overrides) if overrides else limits


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
