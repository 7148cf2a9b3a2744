"""One module per dashboard page; each exposes ``render() -> None``.

The package is ``views`` rather than ``pages``: Streamlit treats a ``pages/`` directory next to the
entry script as a v1 multipage app on the first run (a "Page not found" dialog on deep links).

:data:`REGISTRY` maps page keys to the ``st.Page`` objects :mod:`dashboard.app` registered, so a
page can link to another (empty when a page runs on its own, e.g. under ``AppTest``).
"""

from __future__ import annotations

from typing import Any

REGISTRY: dict[str, Any] = {}
