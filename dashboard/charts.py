"""Altair chart builders (pure: DataFrame in, chart out; no Streamlit, no I/O).

Relative lifts are fractions (0.05 = +5 %) and are drawn as percentages. Infinite interval ends
(one-sided guardrail intervals) are clipped to the plotted range and marked ``open``.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

GOOD, BAD, NEUTRAL = "#1a9850", "#d73027", "#7f7f7f"
VERDICT_SCALE = alt.Scale(domain=["better", "worse", "not significant"], range=[GOOD, BAD, NEUTRAL])


def _clip_intervals(df: pd.DataFrame, lo: str, hi: str, centre: str) -> pd.DataFrame:
    """Copy of ``df`` with interval ends clipped to ±1.2 × the largest finite value (nan ends → centre).

    Adds boolean ``<lo>_open`` / ``<hi>_open`` columns marking ends that were infinite.
    """
    out = df.copy()
    vals = np.concatenate([out[c].to_numpy(dtype=float) for c in (lo, hi, centre)])
    finite = vals[np.isfinite(vals)]
    bound = max(float(np.max(np.abs(finite))) * 1.2 if finite.size else 1.0, 1e-6)
    mid = out[centre].to_numpy(dtype=float)
    for c in (lo, hi):
        v = out[c].to_numpy(dtype=float)
        out[f"{c}_open"] = np.isinf(v)
        out[c] = np.clip(np.where(np.isnan(v), mid, v), -bound, bound)
    return out


def forest_plot(rows: pd.DataFrame, title: str = "Relative lift (treatment vs control), 95% CI") -> alt.LayerChart:
    """Forest plot: one line per metric (× arm) from ``rel_ci_low`` to ``rel_ci_high``, a point at ``rel_delta``.

    ``rows``: tidy results rows with ``metric, treatment, rel_delta, rel_ci_low, rel_ci_high`` and a
    ``verdict`` column (``better``/``worse``/``""``, see :func:`dashboard.tables.direction`).
    """
    df = rows[["metric", "treatment", "rel_delta", "rel_ci_low", "rel_ci_high", "verdict", "role"]].copy()
    df = df[np.isfinite(df["rel_delta"].to_numpy(dtype=float))]
    df["verdict"] = df["verdict"].replace("", "not significant")
    df["label"] = df["metric"] + (" · " + df["treatment"] if df["treatment"].nunique() > 1 else "")
    df = _clip_intervals(df, "rel_ci_low", "rel_ci_high", "rel_delta")
    y = alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260))
    base = alt.Chart(df)
    bars = base.mark_rule(strokeWidth=3).encode(
        y=y, x=alt.X("rel_ci_low:Q", axis=alt.Axis(format="%"), title="relative lift"), x2="rel_ci_high:Q",
        color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None),
    )
    points = base.mark_point(filled=True, size=90).encode(
        y=y, x="rel_delta:Q", color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None),
        tooltip=["metric", "treatment", "role", alt.Tooltip("rel_delta:Q", format="+.2%"),
                 alt.Tooltip("rel_ci_low:Q", format="+.2%"), alt.Tooltip("rel_ci_high:Q", format="+.2%")],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(x="x:Q")
    return alt.layer(bars, points, zero).properties(title=title, height=max(120, 32 * len(df)))


def lift_over_time(series: pd.DataFrame, metric: str, kind: str = "cumulative") -> alt.LayerChart:
    """Relative lift per day with its 95% CI band for one metric (treatment rows of ``timeseries.parquet``).

    ``kind``: ``daily`` or ``cumulative``; ``day`` is days since the start (0-based).
    """
    df = series[(series.metric == metric) & (series.series == kind) & series.rel_delta.notna()].copy()
    df = df[["day", "arm", "rel_delta", "rel_ci_low", "rel_ci_high"]].astype(
        {"rel_delta": float, "rel_ci_low": float, "rel_ci_high": float})
    df = _clip_intervals(df, "rel_ci_low", "rel_ci_high", "rel_delta")
    x = alt.X("day:Q", title="day of experiment", axis=alt.Axis(tickMinStep=1))
    band = alt.Chart(df).mark_area(opacity=0.2).encode(
        x=x, y=alt.Y("rel_ci_low:Q", axis=alt.Axis(format="%"), title=f"{kind} relative lift"), y2="rel_ci_high:Q",
        color=alt.Color("arm:N", title="arm"),
    )
    line = alt.Chart(df).mark_line(point=True).encode(
        x=x, y="rel_delta:Q", color="arm:N",
        tooltip=["day", "arm", alt.Tooltip("rel_delta:Q", format="+.2%"),
                 alt.Tooltip("rel_ci_low:Q", format="+.2%"), alt.Tooltip("rel_ci_high:Q", format="+.2%")],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(y="y:Q")
    return alt.layer(band, line, zero).properties(title=f"{metric}: {kind} lift", height=260)


def values_over_time(series: pd.DataFrame, metric: str, kind: str = "daily") -> alt.Chart:
    """The metric's value per arm per day (``value`` column of ``timeseries.parquet``)."""
    df = series[(series.metric == metric) & (series.series == kind)][["day", "arm", "value"]].astype({"value": float})
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("day:Q", title="day of experiment", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)), color=alt.Color("arm:N", title="arm"),
        tooltip=["day", "arm", alt.Tooltip("value:Q", format=".4g")],
    ).properties(title=f"{metric}: {kind} value per arm", height=260)


def segment_chart(rows: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Relative lift with CI per segment (``all``, ``head``, ``torso``, ``tail``) for one metric."""
    df = rows[rows.metric == metric].copy()
    df["verdict"] = df.get("verdict", pd.Series("", index=df.index)).replace("", "not significant")
    df["label"] = df["segment"] + (" · " + df["treatment"] if df["treatment"].nunique() > 1 else "")
    df = df[np.isfinite(df["rel_delta"].to_numpy(dtype=float))]
    df = _clip_intervals(df, "rel_ci_low", "rel_ci_high", "rel_delta")
    y = alt.Y("label:N", sort=None, title="segment", axis=alt.Axis(labelLimit=260))
    bars = alt.Chart(df).mark_rule(strokeWidth=3).encode(
        y=y, x=alt.X("rel_ci_low:Q", axis=alt.Axis(format="%"), title="relative lift"), x2="rel_ci_high:Q",
        color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None))
    pts = alt.Chart(df).mark_point(filled=True, size=90).encode(
        y=y, x="rel_delta:Q", color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None),
        tooltip=["segment", "treatment", alt.Tooltip("rel_delta:Q", format="+.2%"),
                 alt.Tooltip("p_value_adjusted:Q", format=".3g")])
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(x="x:Q")
    return alt.layer(bars, pts, zero).properties(title=f"{metric} by segment", height=max(140, 40 * len(df)))


def relevance_bars(means: dict[str, dict[str, float]], k: int = 10, p_k: int = 8) -> alt.Chart:
    """Grouped bars of nDCG@k and P@p_k per arm (``relevance.json:mean``)."""
    rows = [{"arm": arm, "metric": f"nDCG@{k}" if m == "ndcg_at_k" else f"P@{p_k}", "value": float(v)}
            for arm, d in means.items() for m, v in d.items() if v is not None]
    return alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("arm:N", title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="mean over queries"),
        color="arm:N", column=alt.Column("metric:N", title=None),
        tooltip=["arm", "metric", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=160, height=220)


def paired_diff_chart(comparisons: list[dict]) -> alt.LayerChart:
    """Paired difference (treatment − control) with 95% CI per relevance metric (``relevance.json``)."""
    rows = [{"metric": c["metric"], "arm": c.get("treatment", ""), "diff": float(c["abs_delta"]),
             "lo": float(c["abs_ci"][0]), "hi": float(c["abs_ci"][1]),
             "verdict": "not significant" if not c.get("significant") else
             ("better" if c["abs_delta"] > 0 else "worse")} for c in comparisons]
    df = pd.DataFrame(rows)
    y = alt.Y("metric:N", title=None)
    bars = alt.Chart(df).mark_rule(strokeWidth=3).encode(
        y=y, x=alt.X("lo:Q", title="treatment − control (paired over queries)"), x2="hi:Q",
        color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None))
    pts = alt.Chart(df).mark_point(filled=True, size=90).encode(
        y=y, x="diff:Q", color=alt.Color("verdict:N", scale=VERDICT_SCALE, title=None),
        tooltip=["metric", "arm", alt.Tooltip("diff:Q", format="+.3f"), alt.Tooltip("lo:Q", format="+.3f"),
                 alt.Tooltip("hi:Q", format="+.3f")])
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(x="x:Q")
    return alt.layer(bars, pts, zero).properties(height=120)


def query_scatter(per_query: pd.DataFrame, control: str, treatment: str, metric: str = "ndcg_at_k") -> alt.LayerChart:
    """Per-query ``metric``: control (x) vs treatment (y); points above the diagonal are treatment wins."""
    c = per_query[per_query.arm == control].set_index("query")[metric].rename("control")
    t = per_query[per_query.arm == treatment].set_index("query")[metric].rename("treatment")
    df = pd.concat([c, t], axis=1, join="inner").reset_index()
    df["diff"] = df["treatment"] - df["control"]
    pts = alt.Chart(df).mark_circle(size=70, opacity=0.8).encode(
        x=alt.X("control:Q", scale=alt.Scale(domain=[0, 1]), title=f"{metric} — {control}"),
        y=alt.Y("treatment:Q", scale=alt.Scale(domain=[0, 1]), title=f"{metric} — {treatment}"),
        color=alt.Color("diff:Q", scale=alt.Scale(scheme="redyellowgreen", domainMid=0), title="Δ"),
        tooltip=["query", alt.Tooltip("control:Q", format=".3f"), alt.Tooltip("treatment:Q", format=".3f")])
    diag = alt.Chart(pd.DataFrame({"a": [0.0, 1.0]})).mark_line(strokeDash=[4, 4], color="grey").encode(x="a:Q", y="a:Q")
    return alt.layer(diag, pts).properties(height=300, title="per-query comparison")


def power_curve(curve: pd.DataFrame, current_n: float | None = None) -> alt.LayerChart:
    """Power (y) against users per arm (x) for a fixed effect; a rule marks ``current_n``."""
    line = alt.Chart(curve).mark_line().encode(
        x=alt.X("users_per_arm:Q", title="users per arm"), y=alt.Y("power:Q", title="power", scale=alt.Scale(domain=[0, 1]),
                                                                     axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("users_per_arm:Q", format=",.0f"), alt.Tooltip("power:Q", format=".1%")])
    target = alt.Chart(pd.DataFrame({"y": [0.8]})).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y=alt.Y("y:Q", title="power"))
    layers = [line, target]
    if current_n:
        layers.append(alt.Chart(pd.DataFrame({"x": [float(current_n)]})).mark_rule(color=BAD).encode(x="x:Q"))
    return alt.layer(*layers).properties(height=240, title="power vs users per arm")


def recall_chart(report: dict) -> alt.Chart:
    """Grouped bars of Recall@k per system of an ``eval_report.json`` (dict form)."""
    rows = [{"system": s["name"], "k": f"Recall@{k}", "recall": float(v)}
            for s in report["systems"] for k, v in (s.get("recall") or {}).items() if v is not None]
    return alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("system:N", title=None, sort=None, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("recall:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("system:N", sort=None), column=alt.Column("k:N", title=None),
        tooltip=["system", "k", alt.Tooltip("recall:Q", format=".3f")],
    ).properties(width=180, height=220)


def homefeed_recall_chart(table: pd.DataFrame) -> alt.Chart:
    """Grouped bars of :func:`dashboard.tables.homefeed_recall_table` (one column per k)."""
    rows = table.melt(id_vars="system", var_name="k", value_name="recall")
    ks = [c for c in table.columns if c != "system"]
    return alt.Chart(rows).mark_bar().encode(
        x=alt.X("system:N", title=None, sort=None, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("recall:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("system:N", sort=None), column=alt.Column("k:N", title=None, sort=ks),
        tooltip=["system", "k", alt.Tooltip("recall:Q", format=".4f")],
    ).properties(width=180, height=220)


def hits_chart(hits: pd.DataFrame) -> alt.Chart:
    """Horizontal bars of the explorer's nearest pins (``rank, pin_id, text, score``)."""
    df = hits.assign(label=hits["rank"].astype(str) + ". " + hits["text"].str.slice(0, 60))
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("label:N", sort=None, title=None),
        x=alt.X("score:Q", title="inner product (cosine)", scale=alt.Scale(zero=False)),
        tooltip=["pin_id", "text", alt.Tooltip("score:Q", format=".4f")],
    ).properties(height=max(120, 26 * len(df)))


ESTIMATOR_LABELS = {"ppi": "PPI (decision)", "judged_only": "judged only", "model_only": "model only",
                    "unjudged_zero": "unjudged = 0 (old)"}


def estimates_forest(rows: pd.DataFrame, title: str = "") -> alt.LayerChart:
    """One interval per estimator (``estimate``, ``ci_low``, ``ci_high``), faceted rows by ``metric``.

    ``rows``: :func:`dashboard.loaders.ppi_estimates_table` rows of one scope and arm.
    """
    df = rows[["metric", "estimator", "estimate", "ci_low", "ci_high"]].copy()
    df = _clip_intervals(df, "ci_low", "ci_high", "estimate")
    df["estimator"] = df["estimator"].map(lambda e: ESTIMATOR_LABELS.get(e, e))
    order = list(ESTIMATOR_LABELS.values())
    y = alt.Y("estimator:N", sort=order, title=None)
    color = alt.Color("estimator:N", sort=order, legend=None)
    bars = alt.Chart(df).mark_rule(strokeWidth=3).encode(y=y, x=alt.X("ci_low:Q", title=title or "estimate, 95% CI"),
                                                         x2="ci_high:Q", color=color)
    pts = alt.Chart(df).mark_point(filled=True, size=80).encode(
        y=y, x="estimate:Q", color=color,
        tooltip=["metric", "estimator", alt.Tooltip("estimate:Q", format="+.4f"),
                 alt.Tooltip("ci_low:Q", format="+.4f"), alt.Tooltip("ci_high:Q", format="+.4f")])
    return alt.layer(bars, pts).properties(height=110, width=420).facet(row=alt.Row("metric:N", title=None))


def calibration_chart(bins: list[dict], lo: float, hi: float) -> alt.LayerChart:
    """Mean human grade against mean model grade per model-grade bin (``agreement.grades.calibration``)."""
    df = pd.DataFrame(bins)
    pts = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("model_mean:Q", scale=alt.Scale(domain=[lo, hi]), title="model grade (bin mean)"),
        y=alt.Y("human_mean:Q", scale=alt.Scale(domain=[lo, hi]), title="mean human grade"),
        tooltip=[alt.Tooltip("model_mean:Q", format=".2f"), alt.Tooltip("human_mean:Q", format=".2f"), "n"])
    diag = alt.Chart(pd.DataFrame({"a": [lo, hi]})).mark_line(strokeDash=[4, 4], color="grey").encode(x="a:Q", y="a:Q")
    return alt.layer(diag, pts).properties(height=260, width=300, title="calibration of the relevance model")
