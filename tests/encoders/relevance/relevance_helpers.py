"""Shared helpers for the student tests (no tests here): a small synthetic dataset, fake teacher
labels over judged + unjudged candidate pairs, and a Redis-free feature source with hashed vectors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from encoders.relevance.engagement_stats import pin_engagement_stats, read_engagements, stats_matrix
from encoders.relevance.pairs import split_of


def make_dataset(out: Path, n_pins: int = 500, n_queries: int = 150, seed: int = 0) -> Path:
    """A synthetic dataset with judgments for every query (so train/validation queries have some)."""
    from encoders.data.synthetic import generate_synthetic

    generate_synthetic(out, n_pins=n_pins, n_queries=n_queries, seed=seed, n_engagements=10 * n_queries,
                       judgments="all", grade1_per_query=8)
    return out


def make_labels(dataset: Path, path: Path, unjudged_per_query: int = 10, noise: float = 0.25, seed: int = 0) -> Path:
    """Teacher labels: judged pairs of train/validation queries (teacher = human grade + noise) and
    random unjudged candidates (teacher = 1.2 + noise), clipped to 1..3."""
    rng = np.random.default_rng(seed)
    j = pd.read_parquet(dataset / "judgments.parquet")
    j["split"] = [split_of(q) for q in j["query"]]
    j = j[j["split"] != "eval"]
    pins = pd.read_parquet(dataset / "pins.parquet", columns=["pin_id"])["pin_id"].to_numpy()
    rows = [j.assign(judged_grade=j["grade"])[["query", "pin_id", "judged_grade", "split"]]]
    for q, s in j[["query", "split"]].drop_duplicates().itertuples(index=False):
        judged = set(j.loc[j["query"] == q, "pin_id"])
        cand = [p for p in rng.choice(pins, unjudged_per_query, replace=False) if p not in judged]
        rows.append(pd.DataFrame({"query": q, "pin_id": cand, "judged_grade": np.nan, "split": s}))
    labels = pd.concat(rows, ignore_index=True)
    base = labels["judged_grade"].fillna(1.2).to_numpy()
    labels["grade"] = np.clip(base + rng.normal(0, noise, len(labels)), 1.0, 3.0)
    labels = labels[["query", "pin_id", "grade", "judged_grade", "split"]]
    labels.to_parquet(path, index=False)
    return path


def _vec(key: str, dim: int) -> np.ndarray:
    seed = int(hashlib.md5(key.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class HashSource:
    """A FeatureSource without models or Redis: vectors hashed from the key, with a shared component
    for queries and pins that share words (so ``dot`` carries signal); statistics from the dataset."""

    def __init__(self, dataset: Path, dim: int = 16):
        self.dim = dim
        self.texts = dict(pd.read_parquet(dataset / "pins.parquet", columns=["pin_id", "text"]).itertuples(index=False))
        self.stats = pin_engagement_stats(read_engagements(dataset))
        self.calls: list[tuple[str, int]] = []

    def _text_vec(self, text: str) -> np.ndarray:
        words = text.lower().split()
        v = sum((_vec(w, self.dim) for w in words), np.zeros(self.dim, np.float32))
        return v / max(float(np.linalg.norm(v)), 1e-6)

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        self.calls.append(("query", len(queries)))
        return np.stack([self._text_vec(q) for q in queries]) if queries else np.zeros((0, self.dim), np.float32)

    def pin_vectors(self, pin_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(("pin", len(pin_ids)))
        found = np.array([p in self.texts for p in pin_ids], dtype=bool)
        out = np.zeros((len(pin_ids), self.dim), np.float32)
        for i, p in enumerate(pin_ids):
            if found[i]:
                out[i] = self._text_vec(self.texts[p])
        return out, found

    def pin_stats(self, pin_ids: list[str]) -> np.ndarray:
        self.calls.append(("stats", len(pin_ids)))
        return stats_matrix(self.stats, pin_ids)
