"""SearchSage Feast definitions: query/pin entities, raw sources, embedding views, live ODFV.

Raw rows land in ``data/queries.parquet`` (``query``, ``event_timestamp``) and
``data/pins.parquet`` (``pin_id``, ``text``, ``event_timestamp``, optional ``embedding`` and
``model_version``), written by ``searchsage feast ingest``. ``feast materialize-incremental`` runs
the batch UDFs over the new rows and writes ``embedding`` + ``model_version`` to Redis: a pin's own
frozen ``embedding`` as it is, else the ONNX bundle from ``$SEARCHSAGE_BUNDLE``. ``query_vector``
serves any query in one ``get_online_features`` call: the stored embedding if materialised, else
encoded live.

Names, join keys, the tower tag and the declared vector length follow the contract in
:mod:`encoders.featurestore.contract`. The declared vector length is ``$SEARCHSAGE_EMBEDDING_DIM``,
else the D of ``$SEARCHSAGE_BUNDLE``, else 384; a bundle of another D is refused at ``feast apply`` (one line, no traceback) and at
materialisation. Relative bundle paths are taken from the directory ``feast`` was started in.

``pin_engagement`` (per-pin engagement statistics of training queries, the relevance student's
features) is declared only when its source ``data/pin_engagement.parquet`` exists — it is written by
``searchsage relevance pin-stats`` — so a repository without it applies and materialises as before.

``user_embedding`` (homefeed: a user's vector in the pin space) is declared likewise only when its
source ``data/users.parquet`` exists — ``searchsage feast ingest --homefeed DIR`` writes it, with the
events in ``data/homefeed/``. Its UDF runs the exported user tower of ``$SEARCHSAGE_USER_BUNDLE``
(onnxruntime, no torch) on each user's events as of the row's ``event_timestamp``
(:mod:`encoders.featurestore.user_udfs`); its vector length is the one above.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from pathlib import Path

from feast import (
    BatchFeatureView,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    RequestSource,
    ValueType,
)
from feast.types import Array, Float32, Float64, Int64, String

from encoders.featurestore.contract import (
    DEFAULT_DIM,
    EMBEDDING_FIELD,
    HOMEFEED_DIR,
    MODEL_VERSION_FIELD,
    PIN_ENTITY,
    PIN_JOIN_KEY,
    PIN_VIEW,
    QUERY_ENTITY,
    QUERY_JOIN_KEY,
    QUERY_VECTOR_VIEW,
    QUERY_VIEW,
    RANKER_PINS_SERVICE,
    RANKER_QUERY_SERVICE,
    TOWER_TAG,
    TOWERS,
    USER_ENTITY,
    USER_JOIN_KEY,
    USER_SERVICE,
    USER_VIEW,
    USERS_SOURCE,
    env_dim,
)
from encoders.featurestore.udfs import (
    bundle_dim,
    check_dim,
    embed_pin_rows,
    embed_queries,
    is_feast_cli,
    live_query_embedding,
)
from encoders.relevance.engagement_stats import COUNT_COLUMNS, SOURCE_FILE, STAT_COLUMNS, VIEW_NAME

warnings.filterwarnings("ignore", message=".*experimental.*", category=RuntimeWarning)


REPO = Path(__file__).resolve().parent
#: The homefeed view is declared once its source exists (``searchsage feast ingest --homefeed``).
WITH_USERS = (REPO / USERS_SOURCE).is_file()


def _declared_dim() -> int:
    """$SEARCHSAGE_EMBEDDING_DIM, else the bundle's D (the user bundle's without one), else 384; every
    declared tower must match it."""
    declared = env_dim()
    dims = {view: bundle_dim(kind) for view, kind in TOWERS.items() if view != USER_VIEW or WITH_USERS}
    dim = declared or dims[PIN_VIEW] or dims[QUERY_VIEW] or dims.get(USER_VIEW) or DEFAULT_DIM
    for view, actual in dims.items():
        if actual is not None:
            check_dim(view, dim, TOWERS[view], actual)
    return dim


try:
    DIM = _declared_dim()
except (FileNotFoundError, ValueError) as _exc:
    if is_feast_cli():  # the feast CLI: one line, not a traceback
        raise SystemExit(f"error: {_exc}") from None
    raise
TTL = timedelta(days=int(os.environ.get("SEARCHSAGE_EMBEDDING_TTL_DAYS") or 30))

query = Entity(
    name=QUERY_ENTITY, join_keys=[QUERY_JOIN_KEY], value_type=ValueType.STRING,
    description="Normalised query text (encoders.normalize.normalize_query).",
)
pin = Entity(name=PIN_ENTITY, join_keys=[PIN_JOIN_KEY], value_type=ValueType.STRING, description="Pin id.")

raw_queries = FileSource(
    name="raw_queries", path="data/queries.parquet", timestamp_field="event_timestamp",
    description="Raw query text as seen in search logs (normalised by the UDF).",
)
raw_pins = FileSource(
    name="raw_pins", path="data/pins.parquet", timestamp_field="event_timestamp",
    description="Pin id + text; embedded by the bundle's pin tower.",
)


def _udf_source(name: str) -> str:
    """Registry source for a UDF: Feast re-executes ``udf_string`` on load, so it imports ours."""
    return f"def {name}(df):\n    from encoders.featurestore.udfs import {name} as f\n    return f(df)\n"


def _schema(key: str) -> list[Field]:
    return [
        Field(name=key, dtype=String),
        Field(name=EMBEDDING_FIELD, dtype=Array(Float32), vector_length=DIM),
        Field(name=MODEL_VERSION_FIELD, dtype=String),
    ]


query_embedding = BatchFeatureView(
    name=QUERY_VIEW, entities=[query], mode="pandas", udf=embed_queries,
    udf_string=_udf_source("embed_queries"), source=raw_queries, schema=_schema(QUERY_JOIN_KEY),
    ttl=TTL, online=True, offline=False, tags={TOWER_TAG: TOWERS[QUERY_VIEW]},
    description="SearchSage query embedding (query tower of the ONNX bundle).",
)
pin_embedding = BatchFeatureView(
    name=PIN_VIEW, entities=[pin], mode="pandas", udf=embed_pin_rows,
    udf_string=_udf_source("embed_pin_rows"), source=raw_pins, schema=_schema(PIN_JOIN_KEY),
    ttl=TTL, online=True, offline=False, tags={TOWER_TAG: TOWERS[PIN_VIEW]},
    description="Pin embedding (pin tower of the ONNX bundle; the frozen item space).",
)

query_request = RequestSource(name="query_request", schema=[Field(name="query_text", dtype=String)])


query_vector = OnDemandFeatureView(
    name=QUERY_VECTOR_VIEW,
    sources=[query_embedding, query_request],
    schema=[
        Field(name="query_vector", dtype=Array(Float32)),
        Field(name="query_vector_source", dtype=String),
        Field(name="query_vector_model_version", dtype=String),
    ],
    mode="pandas",
    udf=live_query_embedding,
    udf_string=_udf_source("live_query_embedding"),
    description="Stored query embedding, or encoded live from query_text when never materialised.",
)

# Two services, because a ranker asks for one query and many candidate pins (different entity rows), and
# because both views name their vector `embedding`: in one request without full_feature_names the pin's
# column would shadow the query's stored embedding inside the ODFV (it would always encode live).
ranker_query = FeatureService(
    name=RANKER_QUERY_SERVICE,
    features=[query_vector],
    description="A query vector for any query: stored when materialised, else encoded live (rows: query, query_text).",
)
ranker_pins = FeatureService(
    name=RANKER_PINS_SERVICE,
    features=[pin_embedding],
    description="Candidate pin embeddings and their model version (rows: pin_id).",
)

# Per-pin engagement statistics (encoders.relevance.engagement_stats): counts and a smoothed rate over
# the engagements of training-split queries only. Declared only once its source exists, so that
# `feast materialize` of a repository without it does not fail on a missing file.
if (REPO / SOURCE_FILE).is_file():
    pin_engagement_source = FileSource(
        name="pin_engagement_source", path=SOURCE_FILE, timestamp_field="event_timestamp",
        description="Per-pin engagement statistics of training queries (searchsage relevance pin-stats).",
    )
    pin_engagement = FeatureView(
        name=VIEW_NAME, entities=[pin], source=pin_engagement_source, ttl=TTL, online=True,
        schema=[Field(name=PIN_JOIN_KEY, dtype=String),
                *(Field(name=c, dtype=Int64 if c in COUNT_COLUMNS else Float64) for c in STAT_COLUMNS)],
        description="Pin engagement counts (all, per action, last 30 days), distinct queries, smoothed "
                    "engagements per query; train-split queries only.",
    )
    ranker_pin_engagement = FeatureService(
        name="ranker_pin_engagement", features=[pin_engagement],
        description="Candidate pins' engagement statistics for the relevance student (rows: pin_id).",
    )

# Homefeed: one vector per user, as of the source row's time, by the exported user tower (onnxruntime).
# Declared only once its source exists, so that `feast materialize` of a repository without it does not
# fail on a missing file. The UDF's registry source names this repository's homefeed dataset by its
# absolute path (the UDF runs in the caller's directory, not the repository's): re-apply after moving it.
if WITH_USERS:
    user = Entity(name=USER_ENTITY, join_keys=[USER_JOIN_KEY], value_type=ValueType.STRING, description="User id.")
    raw_users = FileSource(
        name="raw_users", path=USERS_SOURCE, timestamp_field="event_timestamp",
        description="Users to embed, each row as of its event_timestamp (their latest event when ingested).",
    )
    _user_udf = (f"def embed_users(df):\n    from encoders.featurestore.user_udfs import embed_user_rows as f\n"
                 f"    return f(df, {str(REPO / HOMEFEED_DIR)!r})\n")
    _namespace: dict = {}
    exec(_user_udf, _namespace)  # the very function Feast rehydrates from the registry
    user_embedding = BatchFeatureView(
        name=USER_VIEW, entities=[user], mode="pandas", udf=_namespace["embed_users"], udf_string=_user_udf,
        source=raw_users, schema=_schema(USER_JOIN_KEY), ttl=TTL, online=True, offline=False,
        tags={TOWER_TAG: TOWERS[USER_VIEW]},
        description="Homefeed user embedding in the pin space (the exported user tower, $SEARCHSAGE_USER_BUNDLE).",
    )
    homefeed_user = FeatureService(
        name=USER_SERVICE, features=[user_embedding],
        description="A user's homefeed vector and its model version (rows: user_id); search the pin index with it.",
    )
