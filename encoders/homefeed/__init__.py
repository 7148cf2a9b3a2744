"""Homefeed retrieval: a user tower that maps users into the frozen pin space (see docs/homefeed.md).

Data and features (torch-free): :mod:`~encoders.homefeed.schema` (events / interests tables),
:mod:`~encoders.homefeed.synthetic` (seeded generator), :mod:`~encoders.homefeed.dataset`
(``load_homefeed``), :mod:`~encoders.homefeed.events` (``EventLog``, ``IdVocab``, split time),
:mod:`~encoders.homefeed.features` (``build_batch``: the tower's inputs), :mod:`~encoders.homefeed.corpus`
(time-decayed serving corpus), :mod:`~encoders.homefeed.retrieval` (Recall@k of future engagements),
:mod:`~encoders.homefeed.onnx_scorer` (``OnnxUserScorer``).

Model and training (torch): :mod:`~encoders.homefeed.tower` (``UserTower``), :mod:`~encoders.homefeed.id_table`
(``IdTable``, the torchrec stand-in), :mod:`~encoders.homefeed.masknet`, :mod:`~encoders.homefeed.train`
(``train_homefeed``), :mod:`~encoders.homefeed.ablations`, :mod:`~encoders.homefeed.run` (``load_run``),
:mod:`~encoders.homefeed.embed` (``compute_user_embeddings``), :mod:`~encoders.homefeed.evaluate`,
:mod:`~encoders.homefeed.onnx_export`, :mod:`~encoders.homefeed.scale`.

Nothing is imported here, so importing a torch-free module never pulls in torch.
"""
