"""Feast's Redis records without Feast: the byte-exact codec, the Redis client factory and its
errors, the numpy fast path (:class:`~encoders.redis_records.embeddings.EmbeddingStore`) and the
vector-search index over the same hashes.

No module here imports Feast (Feast objects are read by duck typing); the Feast contract
(:mod:`encoders.featurestore.contract`, stdlib only) is the one thing taken from above.
"""
