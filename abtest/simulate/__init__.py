"""The experiment simulator: retrieval arms over a judged dataset, vectorised users, production logs.

* :mod:`abtest.simulate.rankings` — per-arm ``{query: [pin_id]}`` (BM25, embeddings, blend);
* :mod:`abtest.simulate.dataset` — dataset dir + strategies → :class:`~abtest.simulate.engine.Arena`;
* :mod:`abtest.simulate.engine` — the click/dwell/related-search model (numpy, no torch);
* :mod:`abtest.simulate.writer` — integer-coded events → the parquet event logs of :mod:`abtest.logs`;
* :mod:`abtest.simulate.labels` — true grades, a judged sample of queries and a biased stand-in
  relevance model's labels for every served result (for PPI relevance).
"""
