"""Progress of long stages: a tqdm bar on a terminal, a bounded-rate log line everywhere else.

vLLM's `LLM.chat(..., use_tqdm=Progress)` drives it with the number of finished requests and a
postfix holding input and output tokens/s, so one line carries items, tokens/s and the ETA:
  Processed prompts: 120/400 [01:10<02:43, 1.7it/s, est. speed input: 812 toks/s, output: 43 toks/s]
On a terminal that is a normal progress bar. In a SLURM log or any redirected stream a bar would
write a line per refresh; instead a log line is written at most every `HARNESS_PROGRESS_S` seconds
(default 30), plus one at the start and one at the end.
"""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

from harness.environment import progress_seconds

log = logging.getLogger(__name__)

LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def interval_s() -> float:
    return progress_seconds()


class Progress(tqdm):
    """tqdm when stderr is a terminal, else a log line per interval (vLLM's `use_tqdm` callable)."""

    def __init__(self, *args, **kwargs):
        self.as_log = not sys.stderr.isatty()
        if self.as_log:
            kwargs |= {
                "mininterval": interval_s(),
                "miniters": 1,
                "bar_format": LOG_FORMAT,
                "file": open(os.devnull, "w"),  # noqa: SIM115 - closed in close()
                "dynamic_ncols": False,
            }
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if not self.as_log:
            return super().display(msg, pos)
        log.info("%s", self.format_meter(**self.format_dict))
        return True

    def close(self):
        fp = self.fp if getattr(self, "as_log", False) else None
        super().close()
        if fp is not None:
            fp.close()
