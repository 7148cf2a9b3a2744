"""Feast compute engine: the stock local engine plus a numpy write path for embedding views.

Selected in ``feature_store.yaml``::

    batch_engine:
      type: encoders.featurestore.engine.EmbeddingComputeEngine
      backend: pandas

Materialisation runs Feast's own DAG (source read -> batch UDF, i.e. the ONNX encoder ->
filter -> dedup). Only the last step differs: for a view with ``embedding: Array(Float32)`` and
``model_version`` written to a Redis online store, the output node turns the Arrow columns into
Feast's Redis records with numpy (:mod:`encoders.redis_records.codec`) instead of one protobuf
``Value`` per element. Other views, and non-Redis stores, use the stock output node.

Writes follow the online store's ``skip_dedup`` exactly as Feast's writer does (``true``: last
write wins; ``false``, Feast's default: only rows newer than the stored event time are written, here
with an atomic compare-and-set per key), on one Redis server, a Redis Cluster or a Sentinel master
(the client is the online store's, see :func:`encoders.redis_records.connection.connect`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
from feast.infra.compute_engines.local.compute import LocalComputeEngine, LocalComputeEngineConfig
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.nodes import (
    LocalDedupNode,
    LocalFilterNode,
    LocalOutputNode,
    LocalSourceReadNode,
)
from feast.infra.online_stores.redis import RedisOnlineStore

from encoders.featurestore.contract import DIM_ENV
from encoders.redis_records import codec
from encoders.redis_records.embeddings import EmbeddingStore

ENGINE_TYPE = "encoders.featurestore.engine.EmbeddingComputeEngine"


class EmbeddingComputeEngineConfig(LocalComputeEngineConfig):
    """Same options as the local engine (``backend``); only ``type`` differs."""

    type: Literal["encoders.featurestore.engine.EmbeddingComputeEngine"] = ENGINE_TYPE  # type: ignore[assignment]


def is_embedding_view(view: Any) -> bool:
    names = {f.name for f in getattr(view, "features", [])}
    return {"embedding", "model_version"} <= names and len(getattr(view, "entity_columns", [])) == 1


def arrow_embedding_matrix(column: pa.ChunkedArray | pa.Array, dim: int | None, view_name: str) -> np.ndarray:
    """``list<float>`` Arrow column -> ``(N, D) float32``; ragged, null or wrong-width rows raise."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise ValueError(f"{view_name}: {arr.null_count} rows have a null embedding")
    n = len(arr)
    if n == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
    else:
        lengths = np.diff(np.asarray(arr.offsets))
        width = int(lengths[0])
        if (lengths != width).any():
            raise ValueError(f"{view_name}: embedding rows have different lengths ({sorted(set(lengths.tolist()))[:5]})")
    if dim is not None and width != dim:
        raise ValueError(
            f"{view_name}: embeddings are {width}-d but the feature view declares vector_length={dim}; "
            f"use a bundle with D={dim} or change {DIM_ENV} and re-apply"
        )
    flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(n, width)


def timestamps_to_bytes(column: pa.ChunkedArray | pa.Array) -> list[bytes]:
    """Arrow timestamps -> ``google.protobuf.Timestamp`` bytes per row (naive = UTC)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    ns = arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    # Feast goes through datetime (microseconds); match it exactly.
    us = ns // 1000
    seconds, rem = np.divmod(us, 1_000_000)
    cache: dict[tuple[int, int], bytes] = {}
    out = []
    for s, r in zip(seconds.tolist(), rem.tolist(), strict=True):
        b = cache.get((s, r))
        if b is None:
            b = cache[(s, r)] = codec.encode_timestamp_parts(s, r * 1000)
        out.append(b)
    return out


class FastEmbeddingOutputNode(LocalOutputNode):
    """Writes embedding views with :meth:`EmbeddingStore.write_encoded`; defers to Feast otherwise."""

    def execute(self, context: Any) -> Any:
        view = self.feature_view
        store = context.online_store
        if not (view.online and is_embedding_view(view) and isinstance(store, RedisOnlineStore)):
            return super().execute(context)
        from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue

        table: pa.Table = self.get_single_table(context).data
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        if table.num_rows == 0:
            return output
        from encoders.featurestore.contract import declared_dim

        config = context.repo_config
        declared = declared_dim(view)
        client = store._get_client(config.online_store)
        emb: EmbeddingStore | None = None
        ts_col = view.batch_source.timestamp_field
        batch = config.materialization_config.online_write_batch_size or table.num_rows
        for start in range(0, table.num_rows, batch):
            part = table.slice(start, batch)
            matrix = arrow_embedding_matrix(part.column("embedding"), declared or (emb.dim if emb else None), view.name)
            if emb is None:  # a view without vector_length takes D from its first batch
                emb = EmbeddingStore.from_config(config, view, dim=declared or matrix.shape[1], client=client)
            keys = emb.redis_keys(part.column(emb.join_key).to_pylist())
            mv_cache: dict[str, bytes] = {}
            mvs = [mv_cache.get(v) or mv_cache.setdefault(v, codec.encode_string_value(v))
                   for v in map(str, part.column("model_version").to_pylist())]
            emb.write_encoded(keys, codec.encode_float_list(matrix), mvs, timestamps_to_bytes(part.column(ts_col)))
        if view.offline:
            context.offline_store.offline_write_batch(
                config=config, feature_view=view, table=table, progress=lambda x: None
            )
        return output


def _arrow_value(table: pa.Table) -> Any:
    from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue

    return ArrowTableValue(data=table)


class ArrowParquetSourceNode(LocalSourceReadNode):
    """Reads a local parquet ``FileSource`` with pyarrow (Feast's dask path pickles object columns
    to tokenize them, ~0.4 ms/row for embeddings). Same rows: ``start <= ts <= end``, sorted by ts."""

    def __init__(self, *args: Any, keep_all_columns: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_all_columns = keep_all_columns

    def execute(self, context: Any) -> Any:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from feast.infra.offline_stores.file_source import FileSource

        src = self.source
        uri = getattr(getattr(src, "file_options", None), "uri", "") or ""
        fmt = getattr(src, "file_format", None)
        if not isinstance(src, FileSource) or "://" in uri or (fmt is not None and type(fmt).__name__ != "ParquetFormat"):
            return super().execute(context)
        path = FileSource.get_uri_for_file_path(repo_path=context.repo_config.repo_path, uri=uri)
        table = pq.read_table(path)
        info = self.column_info
        ts_col = info.ts_col
        ts = table.column(ts_col)
        if not pa.types.is_timestamp(ts.type):
            return super().execute(context)
        ts = ts.cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.schema.get_field_index(ts_col), ts_col, ts)
        mask = None
        if self.start_time is not None:
            mask = pc.greater_equal(ts, pa.scalar(self.start_time, type=ts.type))
        if self.end_time is not None:
            upper = pc.less_equal(ts, pa.scalar(self.end_time, type=ts.type))
            mask = upper if mask is None else pc.and_(mask, upper)
        if mask is not None:
            table = table.filter(mask)
        sort = [(info.created_ts_col, "ascending")] if info.created_ts_col in table.column_names else []
        table = table.sort_by([(ts_col, "ascending"), *sort])
        if not self.keep_all_columns:
            wanted = [*info.join_keys, *info.feature_cols, ts_col]
            if info.created_ts_col:
                wanted.append(info.created_ts_col)
            table = table.select([c for c in table.column_names if c in set(wanted)])
        if info.field_mapping:
            table = table.rename_columns([info.field_mapping.get(c, c) for c in table.column_names])
        return _arrow_value(table)


class PassThroughFilterNode(LocalFilterNode):
    """Materialisation has no entity timestamps and (here) no filter expression: skip the
    Arrow -> pandas -> Arrow round trip of the stock node, which copies every embedding row."""

    def execute(self, context: Any) -> Any:
        from feast.infra.compute_engines.utils import ENTITY_TS_ALIAS

        table: pa.Table = self.get_single_table(context).data
        if self.filter_expr or ENTITY_TS_ALIAS in table.column_names:
            return super().execute(context)
        out = _arrow_value(table)
        context.node_outputs[self.name] = out
        return out


class ArrowDedupNode(LocalDedupNode):
    """Latest row per join key (by event, then created timestamp) with pyarrow sorting."""

    def execute(self, context: Any) -> Any:
        import pyarrow.compute as pc

        table: pa.Table = self.get_single_table(context).data
        keys = self.column_info.join_keys_columns
        if len(keys) != 1 or table.num_rows == 0:  # multi-key views: rare here, let Feast do it
            return super().execute(context)
        order = [(keys[0], "ascending"), (self.column_info.timestamp_column, "descending")]
        created = self.column_info.created_timestamp_column
        if created and created in table.column_names:
            order.append((created, "descending"))
        table = table.take(pc.sort_indices(table, sort_keys=order))
        col = table.column(keys[0]).combine_chunks()
        same = pc.equal(col.slice(1), col.slice(0, len(col) - 1)).fill_null(False).to_numpy(zero_copy_only=False)
        first = np.concatenate([[True], ~same])
        out = _arrow_value(table.filter(pa.array(first)))
        context.node_outputs[self.name] = out
        return out


class EmbeddingFeatureBuilder(LocalFeatureBuilder):
    def build_source_node(self, view: Any) -> Any:
        node = ArrowParquetSourceNode(
            "source", view.source, self.get_column_info(view), self.task.start_time, self.task.end_time,
            keep_all_columns=self._should_transform(view),
        )
        self.nodes.append(node)
        return node

    def build_filter_node(self, view: Any, input_node: Any) -> Any:
        node = PassThroughFilterNode("filter", self.get_column_info(view), self.backend,
                                     getattr(view, "filter", None), getattr(view, "ttl", None), inputs=[input_node])
        self.nodes.append(node)
        return node

    def build_dedup_node(self, view: Any, input_node: Any) -> Any:
        node = ArrowDedupNode("dedup", self.get_column_info(view), self.backend, inputs=[input_node])
        self.nodes.append(node)
        return node

    def build_output_nodes(self, view: Any, input_node: Any) -> Any:
        node = FastEmbeddingOutputNode("output", self.dag_root.view, inputs=[input_node])
        self.nodes.append(node)
        return node


class EmbeddingComputeEngine(LocalComputeEngine):
    """``LocalComputeEngine`` whose materialisation plans end in :class:`FastEmbeddingOutputNode`."""

    def _materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
        from feast.infra.common.materialization_job import MaterializationJobStatus
        from feast.infra.compute_engines.local.job import LocalMaterializationJob

        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        try:
            context = self.get_execution_context(registry, task)
            plan = EmbeddingFeatureBuilder(registry, task, backend=self._get_backend(context)).build()
            plan.execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as e:
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=e)
