"""A reference ranker over a Feast repository (:mod:`.ranker`): query vector -> faiss HNSW candidates
(:mod:`.pin_index`) -> exact re-score from the online store -> optional reranker.

Sits above :mod:`encoders.featurestore` and :mod:`encoders.redis_records`; rerankers (e.g. the
relevance student) plug in through the :class:`~encoders.ranking.ranker.Reranker` shape.
"""
