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

Processes (contained): caller -> supervisor (`python -I -S child.py`, empty environment,
unshares) -> init (pid 1: mounts, pivot_root, drops capabilities, reaps) -> runner (pid 2:
limits, uid, runs the code). The code and limits arrive on stdin; the runner reports on a pipe
(a first line once set up, a last line with the outcome); only the supervisor holds the status
pipe that says how the runner ended; stdout and stderr go to anonymous files (last 4 KiB kept).

Modules: caller.py (run, evaluate, check: starts the child and reads its outcome), child.py (the
child program: supervisor, init, runner; stdlib only), literal.py (the literal grammar: written
by the child, parsed and compared here).
"""

from harness.sandbox.caller import (
    CHILD,
    CONTAINED_LAYERS,
    MODES,
    PYTHON,
    TRUSTED_LAYERS,
    Limits,
    Result,
    check,
    evaluate,
    processes_of,
    run,
)
from harness.sandbox.literal import literal, same

__all__ = [
    "CHILD",
    "CONTAINED_LAYERS",
    "MODES",
    "PYTHON",
    "TRUSTED_LAYERS",
    "Limits",
    "Result",
    "check",
    "evaluate",
    "literal",
    "processes_of",
    "run",
    "same",
]
