"""``searchsage rank --rerank STUDENT``: the distilled relevance student as the ranker's reranker.

:class:`StudentReranker` has the shape of :class:`encoders.ranking.ranker.Reranker`: it grades
one query's candidates with :class:`~encoders.relevance.student.StudentScorer`, features read
through Feast (:class:`~encoders.relevance.feature_sources.FeastFeatureSource`) on the ranker's own
store. The student is loaded at the first :meth:`grades` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class StudentReranker:
    """Grades candidates with the student in ``student_dir`` (``searchsage relevance train-student``)."""

    def __init__(self, student_dir: str | Path, repo: str | Path, store: Any = None) -> None:
        self.student_dir, self.repo, self.store = Path(student_dir), Path(repo), store
        self._scorer: Any = None

    @property
    def name(self) -> str:
        family = self._scorer.family if self._scorer is not None else "not loaded"
        return f"{self.student_dir} ({family})"

    def grades(self, query: str, pin_ids: list[str], texts: list[str]) -> np.ndarray:
        from encoders.normalize import normalize_query

        if self._scorer is None:
            from encoders.relevance.feature_sources import FeastFeatureSource
            from encoders.relevance.student import StudentScorer

            self._scorer = StudentScorer(self.student_dir, FeastFeatureSource(self.repo, store=self.store))
        return self._scorer.score([normalize_query(query)] * len(pin_ids), pin_ids, texts)
