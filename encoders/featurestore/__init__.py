"""The Feast plugin: the online store and compute engine named in ``feature_store.yaml``, the
embedding UDFs, the offline sources, and the Feast contract (:mod:`.contract`).

This package imports Feast. Beneath it, :mod:`encoders.redis_records` reads and writes the same
Redis records without Feast; above it, :mod:`encoders.ranking` ranks over a repository. Only
:mod:`.contract` (stdlib only) may be imported from below; this ``__init__`` imports nothing.
"""
