"""Local Redis servers for development, tests and benchmarks: a private ``redis-server``
(:mod:`.server`, also the long-lived one of ``searchsage redis start|stop|status``), one with the
query engine for vector search (:mod:`.stack`) and a Redis Cluster (:mod:`.cluster`).

Production code (the Feast plugin, the fast path, serving) never imports this package; the
error it raises, :class:`~encoders.redis_records.connection.RedisUnavailable`, is the records
layer's.
"""
