"""Prediction-powered inference (PPI, PPI++) for a mean and for a paired difference of two arms.

Setting (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic, *Science* 2023; PPI++: Angelopoulos,
Duchi & Zrnic, arXiv:2311.01453): a few units carry a gold label ``y`` (here: a query judged by
humans) and a prediction ``f`` (the relevance model's metric for the same query); many more units
carry only the prediction. With ``n`` labelled and ``N`` unlabelled units the estimator is

    θ̂(λ) = mean_unlabelled(λ·f) + mean_labelled(y − λ·f)

— the paper's convention: the first mean runs over the **unlabelled** units only (an independent
sample, so the two terms are independent). Its variance is
``λ²·Var(f_unlabelled)/N + Var(y − λ·f_labelled)/n`` (population variances, ddof = 0, as
``ppi_py``), the interval and p-value are normal (z). PPI++ power tuning picks
``λ = Cov(y, f) / ((1 + n/N)·Var(f))`` (the covariance over the labelled units, ddof = 0; the
variance of ``f`` over labelled ∪ unlabelled units, ddof = 1 — ``ppi_py._calc_lam_glm``), clipped
to ``[0, 1]`` by default: ``λ = 0`` is the classical mean of ``y``, ``λ = 1`` classic PPI. These
match ``ppi_py.ppi_mean_pointestimate`` / ``ppi_mean_ci`` / ``ppi_mean_pval`` (tested to 1e-10).

Paired delta of two arms (:func:`ppi_paired_delta`): PPI on the per-unit differences
``treatment − control`` — ``y_T − y_C`` on the labelled units, ``f_T − f_C`` on the others — with
one λ tuned for the difference and used for both arms' values too, so ``treatment_value −
control_value == abs_delta`` exactly. A labelled unit must be labelled **in both arms** (for
relevance: every result either arm showed for the query was judged).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from abtest.stats.distribution import check_alpha, check_alternative
from abtest.stats.errors import StatsInputError
from abtest.stats.result import TestResult
from abtest.stats.ttest import compare_estimates

PPI_METHODS: tuple[str, ...] = ("ppi++", "ppi")


@dataclass(frozen=True)
class PPIResult:
    """A prediction-powered estimate of a mean.

    ``ci`` is ``(low, high)`` at level ``1 − alpha`` (one-sided: open side ±inf); ``p_value`` tests
    ``mean == null`` against ``alternative``; ``lam`` is the λ used (0 = classical, 1 = classic PPI).
    """

    estimate: float
    se: float
    ci: tuple[float, float]
    lam: float
    n_labelled: int
    n_unlabelled: int
    p_value: float
    statistic: float
    alpha: float
    alternative: str
    null: float = 0.0
    method: str = "ppi++"
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-ready dict (``ci`` as a list)."""
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def _arrays(y, yhat, yhat_unlabelled, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    f = np.asarray(yhat, dtype=np.float64).ravel()
    fu = np.asarray(yhat_unlabelled, dtype=np.float64).ravel()
    if y.shape != f.shape:
        raise StatsInputError(f"labelled arrays differ in length: y {y.size} vs yhat {f.size}", metric)
    for name, a in (("y", y), ("yhat", f), ("yhat_unlabelled", fu)):
        if not np.isfinite(a).all():
            raise StatsInputError(f"{name} has {int((~np.isfinite(a)).sum())} non-finite values", metric)
    if y.size < 2:
        raise StatsInputError(f"need >= 2 labelled units, got {y.size}", metric)
    return y, f, fu


def ppi_lambda(y: np.ndarray, yhat: np.ndarray, yhat_unlabelled: np.ndarray, *, clip: bool = True) -> float:
    """The PPI++ power-tuned λ for a mean: ``Cov(y, f) / ((1 + n/N)·Var(f))``.

    ``y (n,)``, ``yhat (n,)``: labelled outcomes and predictions; ``yhat_unlabelled (N,)``. ``0``
    when there are no unlabelled units or the predictions are constant (they carry no information).
    """
    y, f, fu = _arrays(y, yhat, yhat_unlabelled, "")
    n, big_n = y.size, fu.size
    if big_n == 0:
        return 0.0
    var_f = float(np.var(np.concatenate([f, fu]), ddof=1))
    if var_f <= 0.0:
        return 0.0
    lam = float(np.mean((y - y.mean()) * (f - f.mean()))) / ((1.0 + n / big_n) * var_f)
    return float(np.clip(lam, 0.0, 1.0)) if clip else lam


def _z(estimate: float, se: float, alpha: float, alternative: str, null: float) -> tuple[tuple[float, float], float, float]:
    """Normal interval, p-value and statistic (``se == 0`` → degenerate interval, nan p)."""
    if se <= 0.0:
        return (estimate, estimate), math.nan, math.nan
    stat = (estimate - null) / se
    if alternative == "two-sided":
        q = float(sps.norm.ppf(1 - alpha / 2))
        return (estimate - q * se, estimate + q * se), float(2 * sps.norm.sf(abs(stat))), stat
    q = float(sps.norm.ppf(1 - alpha))
    if alternative == "greater":
        return (estimate - q * se, math.inf), float(sps.norm.sf(stat)), stat
    return (-math.inf, estimate + q * se), float(sps.norm.cdf(stat)), stat


def ppi_mean(
    y: np.ndarray,
    yhat: np.ndarray,
    yhat_unlabelled: np.ndarray,
    *,
    lam: float | None = None,
    clip: bool = True,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    null: float = 0.0,
    metric: str = "",
) -> PPIResult:
    """PPI++ estimate of ``E[y]`` from labelled ``y (n,)``, ``yhat (n,)`` and unlabelled ``yhat_unlabelled (N,)``.

    ``lam=None`` tunes λ (:func:`ppi_lambda`, clipped to [0, 1] when ``clip``); ``lam=1.0`` is classic
    PPI, ``lam=0.0`` the classical mean of ``y``. ``alternative="greater"`` tests ``mean > null``.
    Raises :class:`StatsInputError` for fewer than 2 labelled units, non-finite values or bad options.
    """
    check_alternative(alternative, metric)
    check_alpha(alpha, metric)
    y, f, fu = _arrays(y, yhat, yhat_unlabelled, metric)
    n, big_n = y.size, fu.size
    tuned = lam is None
    lam = ppi_lambda(y, f, fu, clip=clip) if tuned else float(lam)
    notes = []
    if big_n == 0:
        if lam != 0.0:
            notes.append("no unlabelled units: λ set to 0 (classical mean of the labelled outcomes)")
        lam = 0.0
    imputed = float(np.mean(lam * fu)) if big_n else 0.0
    rect = y - lam * f
    estimate = imputed + float(rect.mean())
    var = float(np.var(rect)) / n + (float(np.var(lam * fu)) / big_n if big_n else 0.0)
    se = math.sqrt(max(var, 0.0))
    ci, p, stat = _z(estimate, se, alpha, alternative, null)
    if se == 0.0:
        notes.append("zero variance: p-value undefined")
    return PPIResult(estimate=estimate, se=se, ci=ci, lam=lam, n_labelled=n, n_unlabelled=big_n, p_value=p,
                     statistic=stat, alpha=alpha, alternative=alternative, null=null,
                     method="ppi++" if tuned else ("ppi" if lam == 1.0 else f"ppi(λ={lam:g})"),
                     note="; ".join(notes))


def split_labelled(model: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-unit arrays over all ``N`` units → ``(y (n,), yhat (n,), yhat_unlabelled (N − n,))``.

    ``model (N,)``: the prediction for every unit; ``human (N,)``: the gold label, ``nan`` where the unit
    was not labelled. The unlabelled set is the complement of the labelled one (the paper's convention).
    """
    model = np.asarray(model, dtype=np.float64).ravel()
    human = np.asarray(human, dtype=np.float64).ravel()
    if model.shape != human.shape:
        raise StatsInputError(f"model and human arrays differ in length: {model.size} vs {human.size}")
    lab = np.isfinite(human)
    return human[lab], model[lab], model[~lab]


def ppi_paired_delta(
    model_control: np.ndarray,
    model_treatment: np.ndarray,
    human_control: np.ndarray,
    human_treatment: np.ndarray,
    *,
    lam: float | None = None,
    clip: bool = True,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
) -> TestResult:
    """PPI on per-unit differences ``treatment − control``; all four arrays are ``(N,)`` over the same units.

    ``model_*``: the model's metric for every unit (finite); ``human_*``: the human metric, ``nan`` where
    the unit was not labelled. A unit is labelled when it is labelled in **both** arms; a unit labelled
    in one arm only is treated as unlabelled (and counted in ``note``). λ is tuned on the differences
    (``lam=1.0``: classic PPI) and the same λ gives ``control_value``/``treatment_value`` (so
    ``abs_delta`` is their difference); the relative interval uses their PPI variances and covariance.
    Returns a :class:`TestResult` with ``method`` ``"ppi++-paired"`` / ``"ppi-paired"``, ``df = inf``,
    ``n_control = n_treatment =`` labelled units; ``note`` gives λ and the unlabelled count.
    """
    arrs = [np.asarray(a, dtype=np.float64).ravel() for a in (model_control, model_treatment, human_control,
                                                               human_treatment)]
    if len({a.size for a in arrs}) != 1:
        raise StatsInputError(f"paired PPI arrays differ in length: {[a.size for a in arrs]}", metric)
    fc, ft, yc, yt = arrs
    if not (np.isfinite(fc).all() and np.isfinite(ft).all()):
        raise StatsInputError("model metric must be finite for every unit", metric)
    both = np.isfinite(yc) & np.isfinite(yt)
    one = np.isfinite(yc) ^ np.isfinite(yt)
    d = ppi_mean(yt[both] - yc[both], ft[both] - fc[both], ft[~both] - fc[~both], lam=lam, clip=clip,
                 alpha=alpha, alternative=alternative, metric=metric)
    lam_used, n, big_n = d.lam, d.n_labelled, d.n_unlabelled
    rc, rt = yc[both] - lam_used * fc[both], yt[both] - lam_used * ft[both]
    uc, ut = lam_used * fc[~both], lam_used * ft[~both]

    def _cov(a: np.ndarray, b: np.ndarray, m: int) -> float:
        return float(np.mean((a - a.mean()) * (b - b.mean()))) / m if m else 0.0

    c_val = float(rc.mean()) + (float(uc.mean()) if big_n else 0.0)
    t_val = float(rt.mean()) + (float(ut.mean()) if big_n else 0.0)
    v_c = _cov(rc, rc, n) + _cov(uc, uc, big_n)
    v_t = _cov(rt, rt, n) + _cov(ut, ut, big_n)
    cov = _cov(rc, rt, n) + _cov(uc, ut, big_n)
    res = compare_estimates(c_val, v_c, t_val, v_t, df=math.inf, n_control=n, n_treatment=n,
                            method=f"{'ppi++' if lam is None else 'ppi'}-paired", metric=metric,
                            control=control_name, treatment=treatment_name, alpha=alpha,
                            alternative=alternative, cov=cov)
    notes = [res.note, d.note, f"λ = {lam_used:.4g}; {n} labelled, {big_n} unlabelled units"]
    if one.any():
        notes.append(f"{int(one.sum())} units labelled in one arm only treated as unlabelled")
    # identical to the PPI of the differences (same λ); keep its exact numbers for the absolute test
    return res.with_(abs_delta=d.estimate, abs_ci=d.ci, p_value=d.p_value, se=d.se, statistic=d.statistic,
                     note="; ".join(x for x in notes if x))
