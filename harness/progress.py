"""Progress of long stages: a tqdm bar on a terminal, a bounded-rate log line everywhere else.

vLLM's `LLM.chat(..., use_tqdm=Progress)` drives it with the number of finished requests and a
postfix holding input and output tokens/s, so one line carries items, tokens/s and the ETA:
  Processed prompts: 120/400 [01:10<02:43, 1.7it/s, est. speed input: 812 toks/s, output: 43 toks/s]
On a terminal that is a normal progress bar. In a SLURM log or any redirected stream a bar would
write a line per refresh; instead a log line is written at most every `HARNESS_PROGRESS_S` seconds
(default 30), plus one at the start and one at the end.

Every line ends with the stage of the study it belongs to (one batched engine call: vLLM draws
a rendering bar and a generation bar for it, a served engine one bar of requests):
`stage i of n (propose on <model>)`, or `stage i (...)` while the number of stages is not known.
A study starts counting with `plan_stages`; the generator opens each stage with `next_stage`.
The ETA is shown only once it means something: after `ETA_AFTER` of the requests (and at
least one) have finished and `ETA_MIN_S` seconds have passed; before that the first batch's
prefill makes tqdm's rate, and so its ETA, wildly wrong.

The whole run's ETA follows the stage once a stage has generated something (`stage 3 of 5,
run ETA 12:40`): the seconds the stages so far took per token of their planned budget (every
sequence at its token cap), times the budget still ahead (the study's planned tokens,
harness.plan.planned_generations, less the budgets of the stages done, served from the store or
not). Caps overstate every stage alike, so their ratio is a fair rate; a study that stops early
(answers shorter than the caps) ends before its ETA.
"""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

from harness.environment import progress_seconds

log = logging.getLogger(__name__)

LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
ETA_AFTER = 0.1  # fraction of the requests done before an ETA is shown
ETA_MIN_S = 5.0

_stages: dict = {"done": 0, "total": None, "name": None}


def plan_stages(total: int | None, budget: int = 0) -> None:
    """Start counting stages afresh; `total` is the number the study will run (None: unknown),
    `budget` its planned tokens (0: no run ETA)."""
    _stages.update(done=0, total=total, name=None, budget=budget, spent=0, made=0, seconds=0.0)


def next_stage(name: str | None = None) -> None:
    """Open the next stage: the bars drawn from now on belong to it."""
    _stages["done"] += 1
    _stages["name"] = name
    if _stages["total"] is not None and _stages["done"] > _stages["total"]:
        _stages["total"] = _stages["done"]  # more rounds than planned (a context policy's)


def stage_done(budget: int, made: int, seconds: float) -> None:
    """A stage ended: `budget` planned tokens of its sequences (every one at its cap), of
    which `made` were generated now (the rest came from the store), in `seconds`."""
    _stages["spent"] = _stages.get("spent", 0) + budget
    _stages["made"] = _stages.get("made", 0) + made
    _stages["seconds"] = _stages.get("seconds", 0.0) + seconds


def run_eta_s() -> float | None:
    """Seconds the rest of the run should take (module docstring); None before a stage has
    generated anything or without a planned budget."""
    if not _stages.get("budget") or not _stages.get("made"):
        return None
    ahead = max(0, _stages["budget"] - _stages["spent"])
    return _stages["seconds"] / _stages["made"] * ahead


def stage_label() -> str:
    i, n, name = _stages["done"], _stages["total"], _stages["name"]
    where = f"stage {i} of {n}" if n else f"stage {i}"
    if (eta := run_eta_s()) is not None:
        where += f", run ETA {tqdm.format_interval(eta)}"
    return f"{where} ({name})" if name else where


def eta_known(n: float, total: float | None, elapsed: float) -> bool:
    """Whether tqdm's ETA means something yet (see the module docstring)."""
    if not total:
        return False
    return n >= max(1.0, ETA_AFTER * total) and elapsed >= ETA_MIN_S


def interval_s() -> float:
    return progress_seconds()


class Progress(tqdm):
    """tqdm when stderr is a terminal, else a log line per interval (vLLM's `use_tqdm` callable)."""

    def __init__(self, *args, **kwargs):
        self.stage = stage_label()
        self.as_log = not sys.stderr.isatty()
        if self.as_log:
            kwargs |= {
                "mininterval": interval_s(),
                "miniters": 1,
                "bar_format": LOG_FORMAT,
                "file": open(os.devnull, "w"),  # noqa: SIM115 - closed in close()
                "dynamic_ncols": False,
            }
        else:  # a terminal bar: the stage in its description, as the log line has it
            kwargs["desc"] = " | ".join(d for d in (kwargs.get("desc"), self.stage) if d)
            kwargs.setdefault("bar_format", BAR_FORMAT)
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        d = super().format_dict
        if not eta_known(d["n"], d["total"], d["elapsed"]):
            d["bar_format"] = (d.get("bar_format") or BAR_FORMAT).replace("{remaining}", "ETA ?")
        return d

    def display(self, msg=None, pos=None):
        if not self.as_log:
            return super().display(msg, pos)
        log.info("%s | %s", self.format_meter(**self.format_dict), self.stage)
        return True

    def close(self):
        fp = getattr(self, "fp", None) if getattr(self, "as_log", False) else None
        super().close()
        if fp is not None:
            fp.close()
