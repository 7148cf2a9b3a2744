"""The Feast contract, declared once: what ``feature_repo/definitions.py`` declares and every reader
and writer of the embedding views (the UDFs, the fast store, the serving store, ``rank``, the
relevance features) relies on.

* entity ``query`` (join key ``query``: normalised query text) and entity ``pin`` (join key ``pin_id``);
* batch views ``query_embedding`` and ``pin_embedding``: ``embedding`` ``Array(Float32)`` of the
  declared length + ``model_version``, each tagged with the bundle tower that makes it
  (:data:`TOWER_TAG`);
* the on-demand view ``query_vector`` and the feature services ``ranker_query`` / ``ranker_pins``;
* entity ``user`` (join key ``user_id``) and the batch view ``user_embedding`` (+ feature service
  ``homefeed_user``): a user's homefeed vector in the pin space, made by the exported user tower
  (``$SEARCHSAGE_USER_BUNDLE``, :data:`USER_BUNDLE_ENV`) from the events in :data:`HOMEFEED_DIR`, for the
  users of :data:`USERS_SOURCE` (declared only once that source exists);
* the embedding length, one for every view (users, queries and pins share the frozen pin space):
  ``$SEARCHSAGE_EMBEDDING_DIM`` (:func:`env_dim`), else the bundle's D (the user bundle's when no query/pin
  bundle is set), else :data:`DEFAULT_DIM` when the repository is applied; read back from a view with
  :func:`declared_dim`.

Pure constants and two small functions: no Feast, Redis or model import.
"""

from __future__ import annotations

import os
from typing import Any

QUERY_ENTITY = "query"
QUERY_JOIN_KEY = "query"
PIN_ENTITY = "pin"
PIN_JOIN_KEY = "pin_id"
USER_ENTITY = "user"
USER_JOIN_KEY = "user_id"

QUERY_VIEW = "query_embedding"
PIN_VIEW = "pin_embedding"
QUERY_VECTOR_VIEW = "query_vector"
RANKER_QUERY_SERVICE = "ranker_query"
RANKER_PINS_SERVICE = "ranker_pins"
USER_VIEW = "user_embedding"
USER_SERVICE = "homefeed_user"

#: The vector field of both embedding views, and the version field beside it.
EMBEDDING_FIELD = "embedding"
MODEL_VERSION_FIELD = "model_version"

#: Feature-view tag naming the bundle tower that produces its ``embedding`` (query|pin).
TOWER_TAG = "searchsage.tower"
#: View name -> tower, as tagged in ``feature_repo/definitions.py`` (``user``: the homefeed user bundle).
TOWERS = {QUERY_VIEW: "query", PIN_VIEW: "pin", USER_VIEW: "user"}

#: Environment variable naming the user bundle (``searchsage homefeed export``) that makes ``user_embedding``;
#: a relative path is taken from the directory the command runs in, like ``$SEARCHSAGE_BUNDLE``.
USER_BUNDLE_ENV = "SEARCHSAGE_USER_BUNDLE"
#: The offline source of ``user_embedding`` (repository-relative): ``user_id``, ``event_timestamp``. A row
#: (u, t) asks for u's vector *as of t*: u's positive events at or before t, ages measured from t.
USERS_SOURCE = "data/users.parquet"
#: The homefeed dataset the user UDF reads (repository-relative): ``events.parquet``, ``pins.parquet`` (the
#: frozen vectors of the events' pins) and optional ``user_interests.parquet``, as in docs/homefeed.md.
HOMEFEED_DIR = "data/homefeed"

#: Environment variable fixing the declared embedding length.
DIM_ENV = "SEARCHSAGE_EMBEDDING_DIM"
#: Declared length when neither :data:`DIM_ENV` nor a bundle says otherwise.
DEFAULT_DIM = 384


def env_dim() -> int | None:
    """``$SEARCHSAGE_EMBEDDING_DIM`` as a positive integer (None when unset)."""
    raw = os.environ.get(DIM_ENV)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{DIM_ENV}={raw!r}: expected a positive integer (the embedding length)")
    return value


def declared_dim(view: Any) -> int | None:
    """The ``vector_length`` declared on a view's ``embedding`` field (None if not declared)."""
    for f in getattr(view, "features", []) or []:
        if f.name == EMBEDDING_FIELD and getattr(f, "vector_length", 0):
            return int(f.vector_length)
    return None
