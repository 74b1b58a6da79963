"""The quality-versus-diversity analysis on synthetic run directories (a fake embedding model);
one slow test embeds through the real MiniLM model."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
import pytest
import yaml
from vendi_score import vendi

from harness.analysis.diversity import Embedder, distinct_answers, ngram_vendi, vendi_of
from harness.analysis.measure import load_run, ngram_diversity
from harness.analysis.pipeline import analyze
from harness.analysis.quality import QualityError, power_mean
from harness.analysis.regression import FitError, fit
from harness.analyze import main

MODELS = {"q": "strong", "s": "weak", "g": "rambler"}
ACCURACY = {"q": 0.8, "s": 0.2, "g": 0.0}


class FakeModel:
    """Deterministic 'embeddings': hashed bag of words, so equal texts embed equally."""

    def encode(self, texts, **kwargs):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1
        return out


class FakeEmbedder(Embedder):
    def __init__(self, cache_dir):
        super().__init__("fake-bow", cache_dir)
        self.loads = 0

    def _load(self):
        self.loads += 1
        return FakeModel()


def proposal(model: str, text: str, answer: str | None, score: float) -> dict:
    return {
        "model": model,
        "sample_index": 0,
        "text": text,
        "answer": answer,
        "score": score,
        "prompt_tokens": 10,
        "generated_tokens": 20,
        "finish_reason": "stop",
    }


def record(label: str, method: str, item: int, proposals: list[dict], score: float) -> dict:
    return {
        "configuration": label,
        "method": method,
        "item_id": f"i{item}",
        "turn": 1,
        "question": "?",
        "reference": "1",
        "proposals": proposals,
        "rounds": [],
        "aggregation": None,
        "order": list(range(len(proposals))),
        "events": [],
        "final_text": f"final {label} {item} {score}",
        "answer": "1" if score else "2",
        "score": score,
        "judgment": None,
        "outcome": "ok",
        "error": None,
        "calls": len(proposals) + 1,
        "prompt_tokens": 100,
        "generated_tokens": 20 * len(proposals) + 30,
        "gen_s": 0.0,
    }


def study_records(items: int = 8, seed: int = 0, k: int = 6) -> list[dict]:
    """All multisets of size k over q/s/g; the final score follows the proposals' quality."""
    rng = np.random.default_rng(seed)
    records = []
    for mix in ("".join(c) for c in combinations_with_replacement("qsg", k)):
        method, label = ("self_moa", f"self_moa({mix[0]})") if len(set(mix)) == 1 else (
            "mixed_moa",
            f"mixed_moa({mix})",
        )  # fmt: skip
        for i in range(items):
            ps = []
            for j, letter in enumerate(mix):
                correct = float(rng.random() < ACCURACY[letter])
                text = f"{letter} item {i} sample {j} " + ("right" if correct else f"wrong {j}")
                ps.append(proposal(MODELS[letter], text, "1" if correct else str(j + 2), correct))
            quality = np.mean([p["score"] for p in ps])
            records.append(record(label, method, i, ps, float(rng.random() < quality)))
    return records


def write_run(path: Path, records: list[dict], overrides: list[str] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "metrics.json").write_text(json.dumps({"benchmark": "gsm8k", "metric": "acc"}))
    (path / "config.yaml").write_text(yaml.safe_dump({"logger": {"group": "test"}}))
    if overrides is not None:
        (path / ".hydra").mkdir()
        (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return path


def test_vendi_of_identical_texts_is_one_and_of_orthogonal_texts_is_n():
    assert vendi_of(np.ones((4, 8))) == pytest.approx(1.0)
    assert vendi_of(np.eye(4)) == pytest.approx(4.0)
    assert vendi_of(np.eye(4)[:1]) == 1.0


def test_ngram_vendi_grows_with_different_texts():
    same = ngram_vendi(["the answer is 4"] * 3)
    different = ngram_vendi(["the answer is 4", "cats sleep all day", "blue sky, red sun"])
    assert same == pytest.approx(1.0)
    assert different > 2.5


def test_ngram_vendi_counts_an_empty_text_as_its_own_kind():
    assert ngram_vendi(["", "", "some words"]) == pytest.approx(2.0, abs=0.3)


def dense_ngram_vendi(texts: list[str]) -> float:
    """The definition, spelled out: a column per lowercased word 1- and 2-gram, counts, cosine
    kernel (an empty text its own kind: an indicator column), the package's own score_X."""
    words = [re.findall(r"\w+|[^\w\s]", t.lower()) for t in texts]
    grams = [[tuple(w[i : i + n]) for n in (1, 2) for i in range(len(w) - n + 1)] for w in words]
    vocab = sorted({g for gs in grams for g in gs})
    x = np.array([[gs.count(g) for g in vocab] + [float(not gs)] for gs in grams])
    return float(vendi.score_X(x, normalize=True))


REAL_LOOKING = [
    "The answer is 4.\nThe answer is 4.",
    "To find the total, add 3 and 1: 3 + 1 = 4. The answer is \\boxed{4}.",
    "",
    "answer is 4 the",
    "Cats sleep all day; the answer is 5.",
]


@pytest.mark.parametrize("texts", [REAL_LOOKING, REAL_LOOKING[:2], ["", ""], ["one"],
                                   [REAL_LOOKING[0]] * 3, REAL_LOOKING[::-1]])  # fmt: skip
def test_ngram_vendi_equals_the_dense_definition(texts):
    assert ngram_vendi(texts) == pytest.approx(dense_ngram_vendi(texts), abs=1e-9)


def test_d_ngram_of_a_study_equals_each_records_own_vendi(tmp_path):
    """The analysis computes d_ngram item by item from one Gram matrix over the item's distinct
    proposals: each record's value must equal the definition on its own proposals."""
    sets = [REAL_LOOKING[:3], REAL_LOOKING[2:], [REAL_LOOKING[1]] * 2, REAL_LOOKING[1:4]]
    records = [
        record(f"c{i}", "self_moa", i % 2, [proposal("m", t, None, 0.0) for t in texts], 0.0)
        for i, texts in enumerate(sets)
    ]
    got = ngram_diversity([load_run(write_run(tmp_path / "run", records))])
    assert set(got) == {tuple(t) for t in sets}
    for texts in sets:
        assert got[tuple(texts)] == pytest.approx(dense_ngram_vendi(texts), abs=1e-9)


def test_distinct_answers_counts_missing_answers_once_and_none_when_no_answers():
    assert distinct_answers(["1", "1", None, "2", None]) == 3
    assert distinct_answers([None, None]) is None


def test_power_mean_k1_is_the_mean_and_grows_towards_the_best_with_k():
    scores = [1.0, 0.0, 0.0, 0.0]
    assert power_mean(scores, 1) == pytest.approx(0.25)
    assert power_mean(scores, 2) == pytest.approx(0.5)
    assert power_mean(scores, 4) == pytest.approx(0.25**0.25)
    assert power_mean([0.3, 0.3], 3) == pytest.approx(0.3)
    with pytest.raises(QualityError, match=">= 0"):
        power_mean([-1.0, 1.0], 2)


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    q, d = rng.normal(size=30), rng.normal(size=30)
    zq, zd = (q - q.mean()) / q.std(ddof=1), (d - d.mean()) / d.std(ddof=1)
    result = fit(3 * zq + 1 * zd + 10, q, d)
    assert (result.alpha, result.beta, result.gamma) == pytest.approx((3, 1, 10))
    assert result.r2 == pytest.approx(1.0)
    assert result.n == 30


def test_fit_refuses_without_more_configurations_than_parameters():
    with pytest.raises(FitError, match="3 configurations"):
        fit(np.array([1.0, 2, 3]), np.array([1.0, 2, 4]), np.array([3.0, 1, 2]))


def test_fit_warns_below_the_minimum(caplog):
    rng = np.random.default_rng(2)
    with caplog.at_level(logging.WARNING):
        fit(rng.normal(size=5), rng.normal(size=5), rng.normal(size=5))
    assert "only 5 configurations" in caplog.text


def test_fit_refuses_constant_diversity():
    with pytest.raises(FitError, match="d is the same"):
        fit(np.arange(5.0), np.arange(5.0) ** 2, np.ones(5))


def test_fit_refuses_a_constant_outcome(recwarn):
    """Every configuration scoring the same (small models at 0% on MATH): no fit, no nan R^2
    and no statsmodels warning."""
    rng = np.random.default_rng(3)
    with pytest.raises(FitError, match="t \\(the final score\\) is 0 for every configuration"):
        fit(np.zeros(8), rng.normal(size=8), rng.normal(size=8))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_analysis_writes_report_plots_and_json_and_reuses_embeddings(tmp_path):
    run = write_run(tmp_path / "run", study_records())
    first = FakeEmbedder(tmp_path / "cache")
    results = analyze(run, first, ["self_moa", "mixed_moa"], False, draws=50, seed=0)
    assert first.computed > 0 and first.loads == 1
    bench = results["benchmarks"]["gsm8k"]
    assert sum(c["in_fit"] for c in bench["configurations"].values()) == 28
    assert bench["fits"]["q"]["n"] == 28
    assert bench["fits"]["q"]["alpha"] > 0  # t was drawn from the proposals' quality
    assert bench["fits"]["q"]["diff_ci"] is not None
    assert bench["self_vs_mixed"]["self_best_model"] == "self_moa(q)"
    report = (run / "report.md").read_text()
    assert "| dataset | α (quality) | β (diversity) | R² |" in report
    assert "| distinct answers |" in report
    assert "### Self-MoA vs Mixed-MoA" in report
    for png in ("qd_gsm8k.png", "self_vs_mixed.png", "k_gsm8k.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report
    assert json.loads((run / "analysis.json").read_text())["embeddings"]["computed"] > 0

    second = FakeEmbedder(tmp_path / "cache")
    again = analyze(run, second, ["self_moa", "mixed_moa"], False, draws=50, seed=0)
    assert (second.computed, second.loads) == (0, 0)
    assert second.found == first.computed
    assert again["benchmarks"]["gsm8k"]["fits"] == bench["fits"]


def test_analysis_reports_a_refused_fit_instead_of_failing(tmp_path):
    records = [
        r for r in study_records() if r["configuration"] in ("self_moa(q)", "mixed_moa(qqqsss)")
    ]
    run = write_run(tmp_path / "run", records)
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), ["self_moa", "mixed_moa"], False, 0, 0)
    assert "2 configurations" in results["benchmarks"]["gsm8k"]["fit_error"]
    assert "No regression: 2 configurations" in (run / "report.md").read_text()


def test_sweep_keeps_identical_configurations_once_and_tells_different_ones_apart(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", study_records(seed=0), ["seed=0"])
    write_run(sweep / "1", study_records(seed=0), ["seed=0"])  # the same configurations again
    other = study_records(seed=5)  # same labels, other generations
    for r in other:
        r["final_text"] += " (seed 5)"
    write_run(sweep / "2", other, ["seed=5"])
    results = analyze(
        sweep, FakeEmbedder(tmp_path / "cache"), ["self_moa", "mixed_moa"], False, 0, 0
    )
    labels = set(results["benchmarks"]["gsm8k"]["configurations"])
    assert len(results["runs"]) == 3
    assert len(labels) == 56
    assert "mixed_moa(qqqsss)" in labels and "mixed_moa(qqqsss) [seed=5]" in labels


def test_cli_rejects_a_directory_without_runs(tmp_path, capsys):
    assert main([str(tmp_path), "--no-wandb"]) == 2
    assert "no records.jsonl" in capsys.readouterr().err


def test_cli_writes_the_report_without_wandb(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", study_records(items=4))
    monkeypatch.setattr(
        "harness.analyze.Embedder",
        lambda model, cache, device, long_texts="chunk": FakeEmbedder(cache),
    )
    assert (
        main([str(run), "--cache-dir", str(tmp_path / "c"), "--bootstrap", "20", "--no-wandb"]) == 0
    )
    assert (run / "report.md").exists() and not (run / "wandb").exists()


@pytest.mark.slow
def test_minilm_embeddings_see_paraphrases_as_less_diverse_than_unrelated_texts(tmp_path):
    embedder = Embedder("minilm", tmp_path / "cache", device="cpu")
    paraphrases = [
        "The answer is 18 dollars.",
        "She makes $18 a day.",
        "So the total is 18 dollars.",
    ]
    unrelated = ["The answer is 18 dollars.", "Photosynthesis needs light.", "Paris is in France."]
    vectors = embedder.embed(paraphrases + unrelated)
    assert next(iter(vectors.values())).shape == (384,)
    low = vendi_of(np.stack([vectors[t] for t in paraphrases]))
    high = vendi_of(np.stack([vectors[t] for t in unrelated]))
    assert 1.0 < low < high < 3.0
    assert (embedder.found, embedder.computed) == (0, 5)
    again = Embedder("minilm", tmp_path / "cache")
    again.embed(paraphrases)
    assert (again.found, again.computed) == (3, 0)


def test_rated_turns_are_averaged_per_item_on_their_own_scale_without_answer_column(tmp_path):
    records = []
    for r in study_records(items=5):
        for turn in (1, 2):  # MT-Bench style: two records per item, ratings 1..10, no answers
            rated = json.loads(json.dumps(r))
            rated["turn"] = turn
            if turn == 2:  # the id harness.methods gives a second turn
                rated["item_id"] += "/turn2"
            rated["score"] = 1 + 9 * r["score"] if turn == 1 else 5.0
            for p in rated["proposals"]:
                p["score"], p["answer"] = 1 + 9 * p["score"], None
            records.append(rated)
    records[1]["score"] = records[1]["proposals"][0]["score"] = None  # judge replies not read
    run = write_run(tmp_path / "run", records)
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), ["self_moa", "mixed_moa"], False, 0, 0)
    confs = results["benchmarks"]["gsm8k"]["configurations"]
    assert all(1 <= c["t"] <= 10 and 1 <= c["q"] <= 10 for c in confs.values())
    assert all(c["items"] == 5 for c in confs.values())
    assert "| distinct answers |" not in (run / "report.md").read_text()


class WordTokenizer:
    """Words as tokens (ids into a growing vocabulary), enough for the windowing."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def __call__(self, texts, add_special_tokens=False):  # a batch, as the real tokenizer takes
        batch = []
        for text in texts:
            ids = []
            for w in text.split():
                if w not in self.vocab:
                    self.vocab[w] = len(self.words)
                    self.words.append(w)
                ids.append(self.vocab[w])
            batch.append(ids)
        return {"input_ids": batch}

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)


class WindowModel(FakeModel):
    """A fake sentence model that, like a real one, sees only its first max_seq_length tokens."""

    max_seq_length = 12  # windows of 12 - 8 = 4 words

    def __init__(self):
        self.tokenizer = WordTokenizer()

    def encode(self, texts, **kwargs):
        cut = [" ".join(t.split()[: self.max_seq_length]) for t in texts]
        out = super().encode(cut)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class WindowEmbedder(Embedder):
    def _load(self):
        return WindowModel()


def test_long_texts_are_embedded_whole_as_the_weighted_mean_of_their_windows(tmp_path):
    embedder = WindowEmbedder("window-fake", tmp_path, long_texts="chunk")
    text = "a b c d e f g h i j"  # 10 words: windows of 4, 4 and 2
    got = embedder.embed([text, "a b"])
    model = WindowModel()
    parts = model.encode(["a b c d", "e f g h", "i j"])
    expected = (4 * parts[0] + 4 * parts[1] + 2 * parts[2]) / 10
    assert np.allclose(got[text], expected, atol=1e-6)
    assert np.allclose(got["a b"], model.encode(["a b"])[0])  # inside the window: as before
    assert embedder.chunked == 1
    again = WindowEmbedder("window-fake", tmp_path, long_texts="chunk")
    assert np.allclose(again.embed([text])[text], expected, atol=1e-6)
    assert (again.found, again.computed) == (1, 0)  # the chunked embedding is cached


def test_chunking_sees_the_end_of_a_long_text_and_truncation_does_not(tmp_path):
    opening = " ".join(f"w{i}" for i in range(20))
    texts = [opening + " the answer is cats", opening + " the answer is dogs"]
    cut = WindowEmbedder("window-fake", tmp_path / "t", long_texts="truncate").embed(texts)
    assert np.allclose(cut[texts[0]], cut[texts[1]])  # both cut to their shared opening
    whole = WindowEmbedder("window-fake", tmp_path / "c", long_texts="chunk").embed(texts)
    assert not np.allclose(whole[texts[0]], whole[texts[1]])
    assert vendi_of(np.stack([whole[t] for t in texts])) > vendi_of(
        np.stack([cut[t] for t in texts])
    )


def test_an_unknown_long_text_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="long_texts"):
        Embedder("minilm", tmp_path, long_texts="drop")


@pytest.mark.slow
def test_minilm_embeds_a_long_chain_of_thought_by_its_end_too(tmp_path):
    opening = " ".join(f"Step {i}: we add {i} apples to the basket." for i in range(60))
    texts = [opening + " So the answer is 42.", opening + " Therefore the final result is 17."]
    cut = Embedder("minilm", tmp_path / "t", long_texts="truncate").embed(texts)
    assert np.dot(cut[texts[0]], cut[texts[1]]) == pytest.approx(1.0, abs=1e-5)  # same opening
    chunked = Embedder("minilm", tmp_path / "c", long_texts="chunk")
    whole = chunked.embed(texts)
    assert chunked.chunked == 2
    a, b = (whole[t] / np.linalg.norm(whole[t]) for t in texts)
    assert np.dot(a, b) < 0.9999


def k_sweep(root: Path, ks=(2, 3, 4), items: int = 6) -> Path:
    """A sweep of Self-MoA over k (one run directory per k), each with the greedy baseline."""
    rng = np.random.default_rng(0)
    for n, k in enumerate(ks):
        records = []
        for i in range(items):
            ps = [proposal("strong", f"item {i} sample {j} k {k}", "1", float(rng.random() < 0.6))
                  for j in range(k)]  # fmt: skip
            records.append(record(f"self_moa(k={k})", "self_moa", i, ps, float(rng.random() < 0.7)))
            greedy = [proposal("strong", f"item {i} greedy", "1", float(i % 2))]
            records.append(record("single", "single", i, greedy, float(i % 2)))
        write_run(root / f"{n}_method.k={k}", records, [f"method.k={k}"])
    return root


def test_a_k_sweep_shows_every_k_by_default_with_intervals_and_the_baseline(tmp_path):
    from harness.analyze import build_parser

    sweep = k_sweep(tmp_path / "sweep")
    args = build_parser().parse_args([str(sweep)])  # no flag: every k
    results = analyze(
        sweep, FakeEmbedder(tmp_path / "cache"), ["self_moa"], not args.common_k, 200, 0
    )
    bench = results["benchmarks"]["gsm8k"]
    [line] = bench["k_lines"].values()
    assert [r["k"] for r in line] == [2, 3, 4]
    assert all(r["ci"][0] <= r["t"] <= r["ci"][1] for r in line)
    assert [b["label"] for b in bench["baselines"]] == ["single"]
    assert sorted(r["k"] for r in bench["qd"]) == [2, 3, 4]
    assert all(r["in_fit"] for r in bench["qd"]) and bench["fit_ks"] == [2, 3, 4]
    assert (sweep / "k_gsm8k.png").read_bytes()[:4] == b"\x89PNG"
    # three configurations are too few for a fit: said in the report, the rest still drawn
    assert "No regression: 3 configurations" in (sweep / "report.md").read_text()


def test_several_k_fitted_together_are_named_in_the_report(tmp_path):
    sweep = k_sweep(tmp_path / "sweep", ks=(2, 3, 4, 5, 6))
    results = analyze(sweep, FakeEmbedder(tmp_path / "cache"), ["self_moa"], True, 0, 0)
    assert results["benchmarks"]["gsm8k"]["fits"]["q"]["n"] == 5
    report = (sweep / "report.md").read_text()
    assert "It fits k = 2, 3, 4, 5, 6 together" in report and "`--common-k`" in report


def test_common_k_restores_the_fit_over_the_most_common_k_but_plots_every_k(tmp_path):
    sweep = k_sweep(tmp_path / "sweep", ks=(2, 3, 3))
    results = analyze(sweep, FakeEmbedder(tmp_path / "cache"), ["self_moa"], False, 0, 0)
    bench = results["benchmarks"]["gsm8k"]
    assert sorted((r["k"], r["in_fit"]) for r in bench["qd"]) == [(2, False), (3, True), (3, True)]
    assert [r["k"] for r in next(iter(bench["k_lines"].values()))] == [2, 3, 3]


def test_a_study_too_small_for_a_fit_is_a_warning_and_the_report_says_why(tmp_path, caplog):
    sweep = k_sweep(tmp_path / "sweep")
    with caplog.at_level(logging.WARNING):
        results = analyze(sweep, FakeEmbedder(tmp_path / "cache"), ["self_moa"], True, 0, 0)
    assert "fit_error" in results["benchmarks"]["gsm8k"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("no regression" in r.getMessage() for r in caplog.records)
    assert "No regression:" in (sweep / "report.md").read_text()
