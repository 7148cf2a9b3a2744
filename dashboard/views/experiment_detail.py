"""Experiment detail: SRM banner, metric table, forest plot, lift over time, segments, guardrails, power."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.loaders import DashboardDataError, Experiment, load_users
from dashboard.tables import bayes_columns, metric_table, style_metric_table
from dashboard.views.common import fmt_pct, picked_experiment, show_chart

SRM_BLOCKED = "Sample ratio mismatch — verdict blocked"


def srm_banner(exp: Experiment) -> bool:
    """Show the SRM banner; returns whether the verdict may be shown."""
    srm = exp.srm
    obs = ", ".join(f"{a} {n:,}" for a, n in exp.summary["users_per_arm"].items())
    p = srm.get("p", srm.get("p_value"))
    p_txt = f"{p:.3g}" if isinstance(p, int | float) else "–"
    if not exp.srm_passed:
        exp_txt = ", ".join(f"{a} {float(v):,.0f}" for a, v in (srm.get("expected") or {}).items())
        st.error(f"**{SRM_BLOCKED}.** Users per arm {obs} differ from the configured split "
                 f"(expected {exp_txt}; chi-square p = {p_txt} < {srm.get('threshold', 0.001)}). The numbers below "
                 "are not effects — fix assignment or logging before reading them.")
        return False
    st.success(f"SRM check passed: users per arm {obs} (p = {p_txt}).", icon=":material/check_circle:")
    return True


def verdict(rows: pd.DataFrame) -> None:
    decision = rows[rows.role == "decision"]
    better = decision[decision.verdict == "better"].metric.tolist()
    worse = decision[decision.verdict == "worse"].metric.tolist()
    guards = rows[rows.role == "guardrail"]
    failed = guards[guards.verdict == "worse"].metric.tolist()
    parts = [f"**{len(better) + len(worse)} of {len(decision)}** decision metrics significant after Holm"]
    if better:
        parts.append("better: " + ", ".join(better))
    if worse:
        parts.append("worse: " + ", ".join(worse))
    parts.append("guardrails: " + ("all non-inferior" if not failed else "not shown non-inferior: " + ", ".join(failed)))
    (st.warning if worse or failed else st.info)("Verdict — " + "; ".join(parts) + ".")


def metrics_tab(rows: pd.DataFrame) -> None:
    main = rows[rows.role != "guardrail"]
    st.dataframe(style_metric_table(metric_table(main)), hide_index=True, width="stretch")
    st.caption("Green: significantly better; red: significantly worse (decision metrics Holm-adjusted, "
               "secondary metrics unadjusted). Relative deltas are on the log scale, CIs 95%.")
    if "rel_ci_adj_low" in rows.columns:
        st.caption("Adj. CI: the interval at the Holm step level (decision metrics): it excludes 0 exactly when "
                   "p adj < α. Bonferroni (simultaneous) intervals are in results.json (`*_ci_bonf_*`).")
    if "chance_to_win" in rows.columns:
        bayes_summary(main)
    show_chart(charts.forest_plot(main.assign(verdict=metric_table(main)["verdict"].to_numpy())))


def bayes_summary(rows: pd.DataFrame) -> None:
    """Chance to beat control and the credible interval of each metric (``--engine bayesian|both``)."""
    prior = "flat (improper) prior"
    if "bayes_method" in rows.columns and rows["bayes_method"].astype(str).str.contains("proper-prior").any():
        prior = "normal prior on the relative effect"
    st.markdown("**Bayesian engine** — chance to beat control and 95% credible interval")
    shown = rows[rows["chance_to_win"].notna()]
    cols = st.columns(max(min(len(shown), 4), 1))
    for i, (_, r) in enumerate(shown.iterrows()):
        ci = bayes_columns(r.to_frame().T)["Bayes Δ [95% CrI]"][0]
        cols[i % len(cols)].metric(f"P({r.metric} beats control)", f"{100 * float(r.chance_to_win):.1f}%",
                                   help=f"credible interval {ci}", delta=ci, delta_color="off")
    st.caption(f"Gaussian model of the effect, {prior} (GrowthBook's default engine); risk = expected loss: "
               "see results.json `risk_control` / `risk_treatment`.")


def time_tab(exp: Experiment) -> None:
    ts = exp.timeseries
    if ts is None or ts.empty:
        st.info("No time series: " + "; ".join(n for n in exp.notes if "timeseries" in n))
        return
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", sorted(ts.metric.unique()), key="ts_metric")
    kind = c2.radio("Series", ["cumulative", "daily"], horizontal=True, key="ts_kind")
    show_chart(charts.lift_over_time(ts, metric, kind))
    show_chart(charts.values_over_time(ts, metric, kind))
    st.caption("Unadjusted per-day tests for reading trends; the decision is the final table.")


def segments_tab(exp: Experiment) -> None:
    seg = exp.results[exp.results.role != "guardrail"]
    if (seg.segment == "all").all():
        st.info("No segment slices in this analysis (run without --no-segments).")
        return
    metric = st.selectbox("Metric", sorted(seg.metric.unique()), key="seg_metric")
    rows = seg[seg.metric == metric]
    table = metric_table(rows)
    show_chart(charts.segment_chart(rows.assign(verdict=table["verdict"].to_numpy()), metric))
    st.dataframe(style_metric_table(table), hide_index=True, width="stretch")
    st.caption("Segments are exploratory: p adj is Benjamini–Hochberg over all slice rows.")


def guardrails_tab(rows: pd.DataFrame) -> None:
    g = rows[rows.role == "guardrail"]
    if g.empty:
        st.info("No guardrail metrics in this analysis.")
        return
    table = pd.DataFrame({
        "guardrail": g.metric.to_numpy(), "arm": g.treatment.to_numpy(),
        "margin": [f"{100 * m:.1f}%" if m == m else "–" for m in g.margin],
        "Δ rel": [fmt_pct(x) for x in g.rel_delta],
        "one-sided bound": [fmt_pct(lo if hib else hi) for lo, hi, hib in
                            zip(g.rel_ci_low, g.rel_ci_high, g.higher_is_better, strict=True)],
        "status": ["pass: non-inferior" if bool(p) else "FAIL: not shown non-inferior" for p in g.guardrail_passed],
    })
    st.dataframe(table.style.map(lambda v: "background-color: #d4f4dd" if v.startswith("pass") else
                                 "background-color: #fbd5d5", subset=["status"]), hide_index=True, width="stretch")
    st.caption("Non-inferiority: the treatment may be at most `margin` worse than control; pass when the "
               "one-sided 95% bound clears −margin.")


def power_tab(exp: Experiment) -> None:
    from abtest.metrics import CATALOGUE
    from abtest.stats.errors import StatsInputError
    from dashboard.planning import baseline_stats, plan, plannable_metrics, power_curve_frame

    users_path = exp.users_path
    if users_path is None:
        st.info(f"The power calculator needs the per-user table {exp.path / 'users.parquet'} "
                "(written when `abtest analyze` reads a logs directory).")
        return
    import pyarrow.parquet as pq

    try:
        names = plannable_metrics(pq.read_schema(users_path).names)
    except Exception as exc:  # a corrupt parquet raises several pyarrow types
        st.error(f"{users_path} is not a readable parquet file: {exc}")
        return
    if not names:
        st.info(f"{users_path} has none of the catalogue metrics' columns.")
        return
    c1, c2, c3, c4 = st.columns(4)
    metric = c1.selectbox("Metric", names, key="pw_metric")
    n_ctrl = int(exp.summary["users_per_arm"].get(exp.control, 1000))
    users = c2.number_input("Users per arm", min_value=20, value=max(n_ctrl, 20), step=100, key="pw_users")
    lift = c3.number_input("Target relative lift (%)", min_value=0.1, value=2.0, step=0.5, key="pw_lift") / 100
    alpha = c4.selectbox("α (two-sided)", [0.05, 0.01, 0.1], key="pw_alpha")
    try:
        users_df = load_users(users_path, list(CATALOGUE[metric].columns))
        base = baseline_stats(users_df[users_df.arm == exp.control], CATALOGUE[metric])
        p = plan(base, metric, int(users), lift, alpha=float(alpha))
    except (DashboardDataError, StatsInputError, ValueError) as exc:
        st.error(f"Cannot plan {metric}: {exc}")
        return
    m1, m2, m3 = st.columns(3)
    m1.metric("MDE at 80% power", f"{100 * p.mde_relative:.2f}%", help=f"baseline {p.baseline:.4g} (control arm)")
    m2.metric(f"users per arm for {100 * lift:.1f}%", f"{p.users_needed:,}")
    m3.metric(f"power for {100 * lift:.1f}% at {int(users):,}/arm", f"{100 * p.power_at_users:.1f}%")
    curve = power_curve_frame(base, lift, max(p.users_needed * 1.5, users * 1.5), alpha=float(alpha))
    show_chart(charts.power_curve(curve, users))
    st.caption("Two-sided test, equal split, baseline variance from the control arm (abtest.stats.power); "
               "CUPED would shrink the MDE further.")


def render() -> None:
    st.title("Experiment detail")
    exp = picked_experiment()
    if exp is None:
        return
    days = exp.summary.get("running_days")
    c = st.columns(2 + len(exp.summary["users_per_arm"]))
    c[0].metric("running days", days if days is not None else "–")
    c[1].metric("SRM", "pass" if exp.srm_passed else "FAIL")
    for i, (arm, n) in enumerate(exp.summary["users_per_arm"].items()):
        c[2 + i].metric(f"users · {arm}", f"{int(n):,}")
    show_verdict = srm_banner(exp)
    overall = exp.overall()
    arms = exp.treatments
    if len(arms) > 1:
        arm = st.selectbox("Treatment arm", arms, key="arm")
        overall = overall[overall.treatment == arm]
    overall = overall.assign(verdict=metric_table(overall)["verdict"].to_numpy()) if len(overall) else overall
    if show_verdict and len(overall):
        verdict(overall)
    for note in exp.notes:
        st.caption(note)
    tabs = st.tabs(["Metrics", "Over time", "Segments", "Guardrails", "Power / MDE"])
    with tabs[0]:
        metrics_tab(overall)
    with tabs[1]:
        time_tab(exp)
    with tabs[2]:
        segments_tab(exp)
    with tabs[3]:
        guardrails_tab(overall)
    with tabs[4]:
        power_tab(exp)
