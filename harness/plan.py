"""Planning a study: its configurations, the models they need, and every check before a model loads.

A configuration is one method with its knobs, resolved against the run: which models propose
(and how many samples of each), which model aggregates, and a unique label. A study runs its
configurations on every item; with `baseline=true` the greedy answer of every proposer model
(the method that declares itself the `reference`) comes first, as the reference line.

`checked` is where a composed config becomes a study: the schema's conversion
(harness.config), then the methods' knobs (each made once), the models the configurations name
(collected once, from their structure), the token caps the methods declare against each
model's context, the labels and the judge. `compose` composes conf/ outside `@hydra.main`; the
resolvers and schemas it needs are registered by importing this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import harness.rundir  # noqa: F401 - registers ${run_tag:}, used in hydra.run.dir
from harness import benchmarks, engines, methods
from harness.benchmarks import Benchmark, Item, validate_judge
from harness.config import CONF_DIR, ModelConfig, RunConfig, load_model_config, preset_row
from harness.config import to_run_config as schema_run_config
from harness.errors import ConfigError
from harness.methods import Configuration, item_seed
from harness.models import GGUF_MODELS

__all__ = [
    "Configuration",
    "checked",
    "checked_run",
    "compose",
    "configurations",
    "item_seed",
    "load_items",
    "plan_line",
    "planned_stages",
    "planned_generations",
]

log = logging.getLogger(__name__)


def configuration(knobs: methods.Knobs, run: RunConfig, key: str = "method") -> Configuration:
    """The configuration of one method's knobs: its method (made here), structure and label."""
    method = methods.make(knobs, key, run.letters)
    model = knobs.model or run.model.name
    short = {name: letter for letter, name in run.letters.items()}
    proposers = method.proposers(model, run.letters)
    aggregator = method.aggregator(model)
    if knobs.label:
        return Configuration(knobs.label, method, proposers, aggregator)
    spec = method.proposer_spec(model, run.model.name, short)
    agg = short.get(aggregator, aggregator) if aggregator and aggregator != model else None
    parts = ([spec] if spec else []) + method.label_parts(agg)
    label = f"{knobs.name}({','.join(parts)})" if parts else knobs.name
    return Configuration(label, method, proposers, aggregator)


def rows(run: RunConfig) -> list[tuple[methods.Knobs, str]]:
    """(knobs, config key) of each configuration the run asks for: its study's rows, or `method`."""
    found = [(k, f"configurations[{i}]") for i, k in enumerate(run.configurations)]
    return found or [(run.method, "method")]


def with_baselines(confs: list[Configuration], run: RunConfig) -> list[Configuration]:
    """The reference line of every proposer model first (with `baseline`), labels checked."""
    if run.baseline:
        models = dict.fromkeys(name for c in confs for name, _ in c.proposers)
        max_tokens = confs[0].knobs.max_tokens
        greedy = [configuration(methods.reference_knobs(name, max_tokens), run) for name in models]
        reserved = {g.label for g in greedy}
        taken = next((c for c in confs if c.knobs.label in reserved), None)
        if taken is not None:  # it would replace the baseline, the headline's reference
            raise ConfigError(
                f"label {taken.knobs.label!r} is reserved for the greedy baseline (baseline=true); "
                f"give the configuration another label"
            )
        confs = [g for g in greedy if g.label not in {c.label for c in confs}] + confs
    labels = [c.label for c in confs]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise ConfigError(f"two configurations are both labelled {dup!r}; give one a `label`")
    return confs


def configurations(run: RunConfig) -> list[Configuration]:
    """The run's configurations: `configurations` (a study) or `method`, after the baselines."""
    return with_baselines([configuration(k, run, key) for k, key in rows(run)], run)


# -- from a composed config to a checked study ---------------------------------------------------
def compose(*overrides: str) -> DictConfig:
    """The root config composed with command-line style overrides, outside `@hydra.main`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def checked(cfg: DictConfig, run_dir: str | None = None) -> tuple[RunConfig, list[Configuration]]:
    """The typed run of a composed config and its configurations, with every check that needs
    no model: the schema, knobs, model names and folders, token caps against contexts, labels,
    the judge. Fills `run.models` (every model the run needs, by name)."""
    run = schema_run_config(cfg, run_dir)
    bench = cfg.get("benchmark")  # the benchmark's own knobs: a typed node drops unknown keys too
    raw = OmegaConf.to_container(bench, resolve=True) if OmegaConf.is_dict(bench) else run.benchmark
    run.benchmark = benchmarks.knobs_from(raw, "benchmark")
    method = cfg.get("method")  # a typed knobs node would drop a key it does not have: check it
    raw = OmegaConf.to_container(method, resolve=True) if OmegaConf.is_dict(method) else run.method
    run.method = methods.knobs_from(raw, "method")
    run.configurations = [
        methods.knobs_from(preset_row(row, f"configurations[{i}]"), f"configurations[{i}]")
        for i, row in enumerate(run.configurations)
    ]
    engines.engine_class(run.engine.kind)  # fails here, not at the first stage
    validate_model(run.model, "model")
    planned = [(configuration(k, run, key), key) for k, key in rows(run)]
    run.models = collect_models(run, planned)
    check_context(run, planned)
    if run.phase_model is not None and run.phase_model not in run.models:
        raise ConfigError(
            f"phase_model={run.phase_model!r} is not a model of this study; "
            f"its models: {', '.join(sorted(run.models))}"
        )
    confs = with_baselines([c for c, _ in planned], run)
    validate_judge(run.benchmark, [c.method.name for c, _ in planned if c.method.needs_answer])
    return run, confs


def checked_run(cfg: DictConfig, run_dir: str | None = None) -> RunConfig:
    """`checked`'s typed run alone."""
    return checked(cfg, run_dir)[0]


def collect_models(run: RunConfig, planned: list[tuple[Configuration, str]]) -> dict:
    """Every model of the run by name, from the configurations' structure: the run's model,
    then per configuration its model, aggregator, the judge and its other proposers."""
    found: dict[str, ModelConfig] = {run.model.name: run.model}
    letter = {name: c for c, name in run.letters.items()}
    for conf, key in planned:
        model = conf.knobs.model or run.model.name
        names = [(model, f"{key}.model"), (conf.aggregator, f"{key}.aggregator")]
        names.append((run.benchmark.judge, "benchmark.judge"))
        names += [(name, f"letters.{letter.get(name, name)}") for name, _ in conf.proposers]
        for name, where in names:
            if name is not None and name not in found:
                found[name] = load_model_config(name, where)
                validate_model(found[name], f"conf/model/{name}.yaml")
    return found


def validate_model(model: ModelConfig, key: str) -> None:
    if (model.path is None) == (model.gguf is None):
        raise ConfigError(f"{key}: set exactly one of {key}.path (hub id or folder) or {key}.gguf")
    if model.gguf is not None:
        if model.gguf not in GGUF_MODELS:
            raise ConfigError(
                f"{key}.gguf={model.gguf!r} is not a known GGUF model; "
                f"allowed: {', '.join(sorted(GGUF_MODELS))}"
            )
    elif looks_local(model.path) and not Path(model.path).expanduser().is_dir():
        raise ConfigError(f"{key}.path={model.path!r}: no such model folder")
    elif looks_local(model.path) and getattr(model, "engine", None) is None:
        folder = Path(model.path).expanduser()
        if not any(p.suffix in WEIGHTS for p in folder.iterdir()):
            raise ConfigError(
                f"{key}.path={model.path!r}: the model folder holds no weights (no "
                f"{', '.join('*' + w for w in WEIGHTS)} file)"
            )


WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~"))


def context_limit(run: RunConfig, name: str) -> int | None:
    """The model's context in tokens when the config sets it (engine or model max_model_len)."""
    own = run.models[name].engine_kwargs
    key = "engine_kwargs" if "max_model_len" in own else "engine.kwargs"
    limit = {**run.engine.kwargs, **own}.get("max_model_len")
    if limit is not None and (not isinstance(limit, int) or limit < 2):
        raise ConfigError(
            f"{key}.max_model_len (of {name}) must be an integer >= 2 (got {limit!r})"
        )
    return limit


def check_context(run: RunConfig, planned: list[tuple[Configuration, str]]) -> None:
    """Every token cap a method declares must leave room for a prompt in the context of the
    model it caps (every proposer model, or the aggregator); so must the judge's."""
    caps = []
    for conf, key in planned:
        for cap in conf.method.token_caps():
            names = [m for m, _ in conf.proposers] if cap.model == "proposer" else [conf.aggregator]
            caps += [(f"{key}.{cap.knob}", cap.tokens, name) for name in names]
    if run.benchmark.judge is not None:
        caps.append(
            ("benchmark.judge_max_tokens", run.benchmark.judge_max_tokens, run.benchmark.judge)
        )
    for key, tokens, name in caps:
        limit = context_limit(run, name)
        if limit is not None and tokens >= limit:
            raise ConfigError(
                f"{key}={tokens} leaves no room for the prompt in the context of {name} "
                f"(max_model_len={limit}); use fewer tokens"
            )


def planned_generations(confs: list[Configuration], items: int, turns: int = 1) -> dict[str, int]:
    """Upper bounds of what a study asks for before the store serves any of it: generations
    per stage kind, and tokens (every generation at its cap).

    Proposals count once per (model, sampling) stream, as the pool shares them; every method
    says what it generates after them (`Method.planned_rounds`).
    """
    streams: dict[tuple, int] = {}
    rounds: list[int] = []
    for c in confs:
        for model, n in c.proposers:
            key = (model, *c.stream)
            streams[key] = max(streams.get(key, 0), n)
        rounds += c.method.planned_rounds()
    tokens = sum(rounds)
    tokens += sum(n * key[3] for key, n in streams.items())
    scale = items * turns
    return {
        "proposals": sum(streams.values()) * scale,
        "aggregations": len(rounds) * scale,
        "tokens": tokens * scale,
    }


def planned_stages(confs: list[Configuration], turns: int = 1, judged: bool = False) -> int:
    """The batched stages a study runs (its progress says `stage i of n`): per turn, a proposal
    stage per proposer model, then per round a stage per aggregator model still aggregating;
    one judging stage at the end of a judged benchmark."""
    proposers = {model for c in confs for model, _ in c.proposers}
    counts = [(c.method.planned_round_count(), c.aggregator) for c in confs]
    rounds = max((n for n, _ in counts), default=0)
    per_round = [len({agg for n, agg in counts if n >= r}) for r in range(1, rounds + 1)]
    return turns * (len(proposers) + sum(per_round)) + int(judged)


def load_items(run: RunConfig, check: bool = True) -> tuple[Benchmark, list[Item]]:
    """The run's benchmark and its items; with `check`, none is a ConfigError and the
    benchmark's own start-up check runs (e.g. CRUXEval's sandbox)."""
    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    if not check:
        return bench, items
    log.info(
        "%s: %d items from %s (%d malformed skipped)",
        bench.name,
        len(items),
        bench.report.source,
        len(bench.report.skipped),
    )
    if not items:
        raise ConfigError(
            f"benchmark {bench.name} has no items (benchmark.limit={run.benchmark.limit})"
        )
    bench.check()
    return bench, items


def plan_line(run: RunConfig, confs: list[Configuration], items: int, turns: int = 1) -> str:
    """The study's planned generations and tokens, and their time at the engine's hint."""
    planned = planned_generations(confs, items, turns)
    line = (
        f"planned: {len(confs)} configurations on {items} items: at most "
        f"{planned['proposals']} proposals and {planned['aggregations']} aggregations, "
        f"{planned['tokens']} tokens (before the store serves what it has)"
    )
    if run.engine.tokens_per_s_hint > 0:
        minutes = planned["tokens"] / run.engine.tokens_per_s_hint / 60
        line += (
            f"; ~{minutes:.0f} min of decoding at {run.engine.tokens_per_s_hint:g} tokens/s "
            "(prompts not counted: `dry_run=true` adds them)"
        )
    return line
