"""SearchSage experiment dashboard (Streamlit): A/B results, relevance, embedding explorer, model card.

Start it with ``searchsage dashboard --results DIR [--bundle B --repo feature_repo --pins PINS]``.
Modules: :mod:`dashboard.settings` (env-var configuration), :mod:`dashboard.loaders` (reading
result files, no Streamlit), :mod:`dashboard.tables` / :mod:`dashboard.planning` /
:mod:`dashboard.explorer` (pure computation), :mod:`dashboard.charts` (Altair builders),
:mod:`dashboard.views` (one module per page) and :mod:`dashboard.app` (the entry script).
"""
