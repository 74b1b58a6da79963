"""Console versus run.log: what a person watching the console needs, and what the record keeps.

Hydra's job logging (conf/config.yaml, `hydra.job_logging`) writes every record to
`<run dir>/run.log`; its console handler carries `ConsoleFilter`, which drops
- vLLM's own records below ERROR (engine arguments, platform and version warnings), which reach
  the root logger because the engine configs set `VLLM_CONFIGURE_LOGGING=0`;
- Python warnings (routed to the `py.warnings` logger here);
- `harness.report` records: tables the entry points print themselves and also keep in run.log.
run.log's file handler carries `WeightLoadFilter`: vLLM warns once per tensor when it casts a
checkpoint's weights to the engine's dtype (~100 lines per model load); run.log keeps one line
per load instead.
"""

from __future__ import annotations

import logging

NOISY = ("vllm", "py.warnings", "torch", "transformers")
REPORT = "harness.report"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class ConsoleFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        logging.captureWarnings(True)

    def filter(self, record: logging.LogRecord) -> bool:
        if _under(record.name, REPORT):
            return False
        if any(_under(record.name, n) for n in NOISY):
            return record.levelno >= logging.ERROR
        return True


PER_TENSOR = "Attempted to load weight "  # vLLM's per-tensor dtype warning (models/utils.py)


class WeightLoadFilter(logging.Filter):
    """One line per weight-loading episode: the first per-tensor warning of a run of them
    passes, rewritten to say that it stands for the whole load; the rest of the run is dropped.
    Any other record ends the episode."""

    def __init__(self) -> None:
        super().__init__()
        self.in_episode = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not (_under(record.name, "vllm") and str(record.msg).startswith(PER_TENSOR)):
            self.in_episode = False
            return True
        if self.in_episode:
            return False
        self.in_episode = True
        record.msg = (
            f"{record.getMessage()} (and the same cast for every further tensor of this model "
            "load: one line per load, harness.logs.WeightLoadFilter)"
        )
        record.args = ()
        return True


def report(text: str) -> None:
    """Print `text` and keep it in run.log (not twice on the console)."""
    print(text)
    logging.getLogger(REPORT).info("%s", text)


class SafeFileHandler(logging.FileHandler):
    """run.log's handler (conf/config.yaml): a record it cannot write (a full disk, a read-only
    or vanished directory) is one line on stderr, once, instead of a traceback per record; the
    console keeps logging."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        import sys

        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            reason = getattr(error, "strerror", None) or error
            print(
                f"warning: {self.baseFilename} cannot be written ({reason}); logging goes on "
                "to the console only",
                file=sys.stderr,
            )
