"""Teacher labels for distillation: judged pairs plus the unjudged candidates retrieval returns.

The student must learn what the teacher says about the results a retrieval system actually shows,
most of which nobody judged. For every query of the chosen splits, the labelled set is its judged
pairs plus the top ``candidates`` pins of retrieval that it has no judgment for (the query tower of
a run, else the zero-shot model against the pins' frozen embeddings). Output columns: ``query``,
``pin_id``, ``grade`` (teacher, on the judgments' scale), ``judged_grade`` (human; NaN when
unjudged), ``split``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from encoders.data.schema import PINS, DatasetPaths, DataValidationError, pin_embedding_matrix, read_table
from encoders.relevance.pairs import load_judged_pairs

LABEL_CHUNK = 8192


def retrieve_candidates(dataset_dir: str | Path, queries: Sequence[str], k: int, run_dir: str | Path | None,
                        progress: bool = False) -> list[list[int]]:
    """Rows of ``pins.parquet`` of the top ``k`` pins per query ``(Q, k)`` (exact inner product)."""
    from encoders.eval.baselines import encode_with_tower, zero_shot_tower
    from encoders.export.bundle import load_run_tower
    from encoders.model.base_model import resolve_base_model
    from encoders.runtime.vectors import exact_top_k

    pins = read_table(DatasetPaths(Path(dataset_dir)).pins, PINS)
    if "embedding" not in pins.column_names:
        raise DataValidationError(DatasetPaths(Path(dataset_dir)).pins, "no frozen pin embeddings to retrieve "
                                  "candidates from; run `searchsage pins embed` or pass --candidates 0",
                                  column="embedding")
    index = pin_embedding_matrix(pins)
    tower = load_run_tower(run_dir) if run_dir else zero_shot_tower(resolve_base_model(None))
    q = encode_with_tower(tower, list(queries), as_query=True, max_length=tower.config.max_length,
                          progress=progress)
    ids, _ = exact_top_k(q, index, k, progress=progress)
    return ids.tolist()


def label_pairs(teacher: str | Path, dataset_dir: str | Path, out: str | Path, *, run_dir: str | Path | None = None,
                candidates: int = 10, splits: tuple[str, ...] = ("train", "validation"), variant: str | None = None,
                judged_per_query: int | None = None, seed: int = 0, threads: int = 2,
                progress: bool = True) -> pd.DataFrame:
    """Build, score and write the labelled pairs (see the module docstring); returns the table.

    ``judged_per_query``: keep at most this many judged pairs per query (a seeded sample; for
    datasets that judge hundreds of items per query), default all.
    """
    from tqdm.auto import tqdm

    from encoders.runtime.cross_encoder import CrossEncoderScorer

    scorer = CrossEncoderScorer(teacher, variant=variant, threads=threads)
    pairs = load_judged_pairs(dataset_dir)
    keep = np.isin(pairs.split, list(splits))
    if judged_per_query is not None:
        rng = np.random.default_rng(seed)
        for g in pairs.query_groups():
            if g.size > judged_per_query:
                keep[rng.permutation(g)[judged_per_query:]] = False
    judged = pairs.subset(keep)
    rows = {"query": list(judged.queries), "pin_id": list(judged.pin_ids), "text": list(judged.texts),
            "judged_grade": judged.grades.tolist(), "split": judged.split.tolist()}
    if candidates > 0 and len(judged):
        seen = set(zip(judged.queries, judged.pin_ids, strict=True))
        queries = list(dict.fromkeys(judged.queries))
        split_of = dict(zip(judged.queries, judged.split, strict=True))
        pins = read_table(DatasetPaths(Path(dataset_dir)).pins, PINS, columns=["pin_id", "text"])
        pin_ids, texts = pins.column("pin_id").to_pylist(), pins.column("text").to_pylist()
        for q, top in zip(queries, retrieve_candidates(dataset_dir, queries, candidates, run_dir, progress),
                          strict=True):
            for r in top:
                if r >= 0 and (q, pin_ids[r]) not in seen:
                    rows["query"].append(q)
                    rows["pin_id"].append(pin_ids[r])
                    rows["text"].append(texts[r])
                    rows["judged_grade"].append(float("nan"))
                    rows["split"].append(split_of[q])
    n = len(rows["query"])
    grades = np.zeros(n, dtype=np.float64)
    for s in tqdm(range(0, n, LABEL_CHUNK), desc="teacher labels", disable=not progress, unit="chunk"):
        grades[s : s + LABEL_CHUNK] = scorer.score(rows["query"][s : s + LABEL_CHUNK], rows["text"][s : s + LABEL_CHUNK])
    table = pd.DataFrame({"query": rows["query"], "pin_id": rows["pin_id"], "grade": grades,
                          "judged_grade": np.asarray(rows["judged_grade"], dtype=np.float64), "split": rows["split"]})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    return table
